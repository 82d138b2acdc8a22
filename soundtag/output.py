"""Where soundtag prints: two consoles, ``out`` (results, stdout) and ``console`` (progress and
messages, stderr), and nothing else. Both promise, whatever is printed through them (a message,
a table, an error line):

- no secret: the text is masked (soundtag.redaction) as it is written, after rendering, so no
  caller can forget it;
- no markup: user text (a folder or a label named ``[/]`` or ``[bold]``) prints as it is written
  and cannot break the line. Style comes from ``styled()`` or rich Text objects, never from
  ``[red]``-like tags in a string.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.text import Text

from soundtag.redaction import masked


class _Masked:
    """sys.stdout or sys.stderr, looked up at each write (tests swap them), with secrets masked."""

    def __init__(self, name: str) -> None:
        self._name = name

    def write(self, text: str) -> int:
        return getattr(sys, self._name).write(masked(text))

    def __getattr__(self, attribute: str):
        return getattr(getattr(sys, self._name), attribute)


def _console(name: str, **options) -> Console:
    return Console(file=_Masked(name), markup=False, highlight=False, emoji=False, soft_wrap=True, **options)


console = _console("stderr")
# Piped output (scripts, logs) gets wide lines instead of rich's 80-column default.
out = _console("stdout", width=None if sys.stdout.isatty() else 200)


def styled(style: str, head: str, rest: str = "") -> Text:
    """``head`` in ``style`` followed by ``rest`` verbatim: a line's label (``error:``, ``failed``)
    and its user text."""
    return Text.assemble((head, style), rest)


def counted(n: int, one: str, many: str | None = None) -> str:
    """``1 file``, ``2 files``: a count with its noun as a sentence has it."""
    return f"{n} {one if n == 1 else many or one + 's'}"
