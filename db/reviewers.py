"""The named people of a reviewing team (the ``reviewer`` table): added with a token printed once,
of which only a slow salted hash is kept; found again by that token; removed.

A token is ``<row id>.<secret>``: the id finds the one hash to check, so signing in costs one
scrypt whatever the size of the team, and a guess of another person's secret costs the same."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from db.models import ReviewerRow, now
from soundtag.errors import SoundtagError
from soundtag.states import Role

# scrypt at 16 MiB and ~50 ms a check: slow enough that a stolen table does not give tokens back,
# cheap enough for one check per sign-in (sessions carry the person afterwards).
_N, _R, _P = 2 ** 14, 8, 1
_COLUMNS = ReviewerRow.__table__.c


@dataclass(frozen=True)
class Reviewer:
    id: int
    name: str
    role: Role
    created_at: datetime


def _hash(secret: str, salt: bytes) -> str:
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    encode = base64.urlsafe_b64encode
    return f"scrypt${_N}${_R}${_P}${encode(salt).decode()}${encode(digest).decode()}"


def _matches(secret: str, stored: str) -> bool:
    _, n, r, p, salt, digest = stored.split("$")
    found = hashlib.scrypt(secret.encode(), salt=base64.urlsafe_b64decode(salt), n=int(n), r=int(r), p=int(p),
                           dklen=32)
    return hmac.compare_digest(found, base64.urlsafe_b64decode(digest))


def _row(row) -> Reviewer:
    return Reviewer(row.id, row.name, Role(row.role), row.created_at)


def add_reviewer(engine: Engine, name: str, role: Role) -> tuple[Reviewer, str]:
    """Add ``name`` with ``role``; returns them and their token, which is kept nowhere. Raises
    SoundtagError when the name is taken or not a name."""
    if not name or name != name.strip() or not name.isprintable() or len(name) > 100:
        raise SoundtagError(f"reviewer {name!r}: a name is 1 to 100 printable characters, no surrounding spaces")
    secret = secrets.token_urlsafe(24)
    try:
        with engine.begin() as conn:
            row = conn.execute(ReviewerRow.__table__.insert().returning(*_COLUMNS), [{
                "name": name, "role": str(role), "token_hash": _hash(secret, secrets.token_bytes(16)),
                "created_at": now()}]).one()
    except IntegrityError:
        raise SoundtagError(f"reviewer {name}: already added; remove them first to give a new token") from None
    return _row(row), f"{row.id}.{secret}"


def reviewers(engine: Engine) -> list[Reviewer]:
    """The team as it is now, by name."""
    with engine.connect() as conn:
        rows = conn.execute(select(*_COLUMNS).where(ReviewerRow.removed_at.is_(None)).order_by(ReviewerRow.name))
        return [_row(row) for row in rows]


def remove_reviewer(engine: Engine, name: str) -> None:
    """Remove ``name`` from the team; their verdicts stay. Raises SoundtagError if not there."""
    with engine.begin() as conn:
        gone = conn.execute(update(ReviewerRow).where(ReviewerRow.name == name, ReviewerRow.removed_at.is_(None))
                            .values(removed_at=now())).rowcount
    if not gone:
        raise SoundtagError(f"reviewer {name}: not in the team (`soundtag reviewers list`)")


def signed_in(engine: Engine, token: str) -> Reviewer | None:
    """The person whose token this is, while they are in the team; None for any other string."""
    row_id, _, secret = token.partition(".")
    if not (row_id.isascii() and row_id.isdigit() and len(row_id) <= 18 and secret):
        return None
    with engine.connect() as conn:
        row = conn.execute(select(*_COLUMNS).where(ReviewerRow.id == int(row_id),
                                                   ReviewerRow.removed_at.is_(None))).first()
    return _row(row) if row is not None and _matches(secret, row.token_hash) else None


def still_in(engine: Engine, reviewer_id: int) -> Reviewer | None:
    """The person, if they are still in the team: what every request of their session checks."""
    with engine.connect() as conn:
        row = conn.execute(select(*_COLUMNS).where(ReviewerRow.id == reviewer_id,
                                                   ReviewerRow.removed_at.is_(None))).first()
    return _row(row) if row is not None else None


def any_reviewers(engine: Engine) -> bool:
    """Whether a team is defined: without one, the page serves one person as before."""
    with engine.connect() as conn:
        return conn.execute(select(ReviewerRow.id).where(ReviewerRow.removed_at.is_(None)).limit(1)).first() is not None
