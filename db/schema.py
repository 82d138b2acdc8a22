"""Connecting to the database and bringing its schema to the current Alembic revision."""

from __future__ import annotations

import atexit
import math
import os
import sqlite3
import weakref
from functools import lru_cache
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, create_engine, event, inspect, make_url, text

from soundtag.errors import DatabaseError, first_line

MIGRATIONS = Path(__file__).with_name("migrations")
# The newest revision in migrations/versions (a test keeps the two in step). Comparing with a
# constant spares every command alembic's import and its parsing of the migration scripts.
HEAD = "0017"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (a person's sqlite3 shell) query while a run writes; foreign keys are off
    # by default in SQLite and the cascades rely on them.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # segment_labels computes window scores with exp(), which SQLite has only when it was built
    # with its math functions (most builds since 3.35).
    try:
        cursor.execute("SELECT exp(0)")
    except sqlite3.OperationalError:
        dbapi_connection.create_function("exp", 1, math.exp, deterministic=True)
    cursor.close()


class PgFloats(bytes):
    """A float4 or float8 array in PostgreSQL's binary format, made by numpy: a batch's scores and
    cosines in one parameter (db/sql.py). As a list psycopg adapts them one Python object at a
    time, a microsecond a number, which was most of a relabel's time (issue 9)."""

    @classmethod
    def of(cls, values: np.ndarray) -> PgFloats:
        flat = np.ravel(values)
        size = flat.dtype.itemsize
        body = np.empty(len(flat), dtype=[("size", ">i4"), ("value", f">f{size}")])
        body["size"], body["value"] = size, flat
        # ndim, no nulls, element type (float4 700, float8 701), length, lower bound
        head = np.array([1, 0, 700 if size == 4 else 701, len(flat), 1], dtype=">i4")
        return (_Float4s if size == 4 else _Float8s)(head.tobytes() + body.tobytes())


# psycopg picks a dumper, and so the parameter's type, by class: one per element type.
class _Float4s(PgFloats):
    pass


class _Float8s(PgFloats):
    pass


def _pg_adapters(dbapi_connection, _record) -> None:
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    for kind, array_oid in ((_Float4s, 1021), (_Float8s, 1022)):
        dumper = type(f"{kind.__name__}Dumper", (Dumper,), {
            "format": Format.BINARY, "oid": array_oid, "dump": lambda self, obj: obj})
        dbapi_connection.adapters.register_dumper(kind, dumper)


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """One pooled engine per URL per process. ``postgresql://`` uses psycopg 3."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return _closed_at_exit(engine)
    # pre_ping: a worker that outlives a PostgreSQL restart gets a fresh connection, not an error.
    # constraint_exclusion: the views' rank = 1 queries need it (db/views.py); migration 0006 sets
    # it on the database, which reaches only sessions opened after it, so soundtag's own ask too.
    engine = create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=4,
                           connect_args={"options": "-c constraint_exclusion=on"})
    event.listen(engine, "connect", _pg_adapters)
    return _closed_at_exit(engine)


def missing_sqlite_file(url: str) -> str | None:
    """The absolute path of the SQLite file ``url`` names when no file is there (connecting
    would create it); None for any other database, or one in memory."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = os.path.abspath(database)
    return None if os.path.exists(path) else path


def _closed_at_exit(engine: Engine) -> Engine:
    """Close the engine's connections when the process exits, whatever the garbage collector does
    then (the CLI skips its last collections): SQLite moves its WAL into the database file and
    removes it only when the last connection closes."""
    alive = weakref.ref(engine)
    atexit.register(lambda: (engine := alive()) is not None and engine.dispose())
    return engine


def safe_url(engine: Engine) -> str:
    """The engine's URL as it may be printed: its password masked."""
    return engine.url.render_as_string(hide_password=True)


def _alembic_config(engine: Engine):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def upgrade(engine: Engine) -> None:
    """Migrate to the newest revision (creating the schema in an empty database)."""
    from alembic import command

    config = _alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def is_current(engine: Engine) -> bool:
    with engine.connect() as connection:
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]


def ensure_schema(engine: Engine) -> None:
    """Create the schema in an empty database; refuse to touch an outdated one silently."""
    try:
        if "alembic_version" not in inspect(engine).get_table_names():
            upgrade(engine)
        elif not is_current(engine):
            raise DatabaseError(f"{safe_url(engine)}: schema is outdated; run `soundtag db upgrade`")
    except DatabaseError:
        raise
    except Exception as exc:  # noqa: BLE001 - driver errors vary; the user needs one line
        raise DatabaseError(f"{safe_url(engine)}: {first_line(exc)}") from None
