"""Passwords kept out of output: any text about to be printed (a database or broker URL, a
driver's message that may echo one) with URL passwords and ``?password=``-like values as ``***``."""

from __future__ import annotations

import re

MASK = "***"
# scheme://user:PASSWORD@host; greedy up to the last @ of the word, for passwords holding an @.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][\w+.-]*://[^\s:/@]*:)\S+(?=@)")
_SECRET_QUERY = re.compile(r"(?P<head>[?&][^=\s&]*(?:pass|secret|token|key)[^=\s&]*=)[^&\s]+", re.IGNORECASE)


def masked(text: str) -> str:
    """``text`` with the password of every URL in it, and ``?password=``-like values, as ``***``."""
    return _SECRET_QUERY.sub(rf"\g<head>{MASK}", _USERINFO.sub(rf"\g<head>{MASK}", text))
