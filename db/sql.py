"""Statement helpers the other db modules share: rows as a table in one statement whatever their
number, ``IN`` with one parameter, the dialect's upsert, chunks under the parameter limits, and
the database's clock."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone

import numpy as np
from sqlalchemy import JSON, DateTime, Engine, Float, Integer, any_, bindparam, column, func, select, text, type_coerce
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY, REAL
from sqlalchemy.types import TypeEngine

from db.schema import PgFloats


CHUNK = 2000  # rows per statement: well under SQLite's and PostgreSQL's parameter limits


def insert(engine: Engine, table):
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def chunks(items: Sequence, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _pg_numbers(values: Iterable, kind: type = float) -> str:
    """A PostgreSQL array literal of numbers (None: NULL): one string that the server parses, where
    psycopg would adapt a list one Python object at a time. repr gives every double back exactly."""
    return "{" + ",".join("NULL" if v is None else repr(kind(v)) for v in values) + "}"


def relation(engine: Engine, name: str, columns: dict[str, TypeEngine], rows: list[tuple],
             arrays: dict[str, tuple[TypeEngine, np.ndarray]] | None = None):
    """``rows`` as a table to select from, in one statement whatever their number: arrays
    unnested on PostgreSQL, one JSON document on SQLite. Per-row parameters would make a
    100,000-file enqueue spend its time building SQL. ``arrays`` adds array columns, one row of
    each 2-D array per row: on PostgreSQL one flat array, sliced."""
    arrays = arrays or {}
    if engine.dialect.name == "postgresql":
        params, unnested = {}, []
        for i, (col, kind) in enumerate(columns.items()):
            values = [row[i] for row in rows]
            if kind._type_affinity in (Integer, Float):
                params[f"{name}_{col}"] = _pg_numbers(values, int if kind._type_affinity is Integer else float)
                unnested.append(f"CAST(:{name}_{col} AS {kind.compile(dialect=engine.dialect)}[])")
            else:
                params[f"{name}_{col}"] = bindparam(f"{name}_{col}", values, type_=ARRAY(kind))
                unnested.append(f":{name}_{col}")
        picks, flat = [f'r."{col}"' for col in columns], []
        for col, (kind, values) in arrays.items():
            width = values.shape[1]
            params[f"{name}_{col}"] = bindparam(f"{name}_{col}", PgFloats.of(
                values.astype(np.float32 if isinstance(kind, REAL) else np.float64)))
            flat.append(f'CAST(:{name}_{col} AS {kind.compile(dialect=engine.dialect)}[]) AS "{col}"')
            picks.append(f'f."{col}"[(r.n - 1) * {width} + 1 : r.n * {width}] AS "{col}"')
        names = ", ".join(f'"{col}"' for col in columns)
        sql = f"SELECT {', '.join(picks)} FROM unnest({', '.join(unnested)}) WITH ORDINALITY AS r({names}, n)"
        if flat:
            # Cast once: inline, each row's slice would cast the whole array again.
            sql = f"WITH f AS MATERIALIZED (SELECT {', '.join(flat)}) {sql}, f"
        query = text(sql).bindparams(*(p for p in params.values() if not isinstance(p, str)),
                                     **{k: p for k, p in params.items() if isinstance(p, str)})
    else:
        picks = ", ".join(f"json_extract(value, '$[{i}]') AS \"{col}\"" for i, col in enumerate([*columns, *arrays]))
        if arrays:
            rows = [(*row, *extra) for row, *extra in zip(rows, *(values.tolist() for _, values in arrays.values()))]
        query = text(f"SELECT {picks} FROM json_each(:{name}_rows)").bindparams(
            **{f"{name}_rows": json.dumps(rows, default=_sqlite_time)})
    return query.columns(*(column(c, t) for c, t in columns.items()),
                         *(column(c, ARRAY(t) if engine.dialect.name == "postgresql" else JSON())
                           for c, (t, _) in arrays.items())).subquery(name)


def _sqlite_time(value):
    """A datetime as SQLAlchemy stores one in SQLite: UTC, without its zone, to the microsecond."""
    if not isinstance(value, datetime):
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")


def among(engine: Engine, name: str, col, kind: TypeEngine, values: Sequence):
    """``col IN values`` with one parameter however many values: an expanded IN list of
    thousands took longer to send, parse and plan than the statement took to run. On PostgreSQL
    ``= ANY(array)``, which the planner sizes from the array even where statistics are missing."""
    if engine.dialect.name == "postgresql":
        return col == any_(bindparam(name, list(values), type_=ARRAY(kind)))
    return col.in_(select(relation(engine, name, {"value": kind}, [(v,) for v in values]).c.value))


def clock(engine: Engine, plus_s: float = 0.0):
    """The database's time now, plus ``plus_s`` seconds, as an SQL expression: one clock that
    every worker shares, whatever its own says."""
    if engine.dialect.name == "postgresql":
        return func.now() + timedelta(seconds=plus_s)
    # As SQLAlchemy stores a datetime on SQLite (text with microseconds), so the two compare as text.
    return type_coerce(func.strftime("%Y-%m-%d %H:%M:%f", "now", f"{plus_s:+f} seconds").op("||")("000"),
                       DateTime(timezone=True))
