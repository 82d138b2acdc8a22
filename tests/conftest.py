"""Fixtures build what the tests need in seconds: a tiny random CLAP saved with save_pretrained,
real audio files, a fresh PostgreSQL database on the local server."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bench.checkpoint import build

PG_ADMIN_URL = os.environ.get("SOUNDTAG_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_clap(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("models") / "tiny-clap", "tiny")


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'soundtag.db'}"


@pytest.fixture
def pg_url():
    """A new, empty database on the local PostgreSQL server, dropped afterwards."""
    name = f"soundtag_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    yield url.replace("postgresql+psycopg://", "postgresql://")
    from db.schema import engine_for

    engine_for.cache_clear()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """Each test using this runs once on SQLite and once on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'soundtag.db'}"
    return request.getfixturevalue("pg_url")


def soundtag(*args: str, cwd: Path | None = None, env: dict | None = None, check: bool = True):
    """Run the ``soundtag`` command as a user would, in a subprocess."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "soundtag.cli", *args], cwd=cwd or ROOT, env=full_env,
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"soundtag {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc
