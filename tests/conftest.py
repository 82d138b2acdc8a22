"""Fixtures build what the tests need in seconds: a tiny random CLAP saved with save_pretrained,
real audio files, a fresh PostgreSQL database on the local server."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import settings
from sqlalchemy import create_engine, text

from model.random_clap import build

PG_ADMIN_URL = os.environ.get("SOUNDTAG_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TEST_REDIS = os.environ.get("SOUNDTAG_TEST_REDIS", "redis://127.0.0.1:6379/0")
# Whatever the suite starts or imports talks to the test Redis, even where a test names none.
os.environ["SOUNDTAG_BROKER_URL"] = TEST_REDIS
ROOT = Path(__file__).resolve().parents[1]
# No deadline for a property's examples: a test asserts behaviour, never time (speed is bench/'s),
# and on a shared CPU an example's duration is noise.
settings.register_profile("soundtag", deadline=None)
settings.load_profile("soundtag")


@pytest.fixture(autouse=True)
def private_caches(tmp_path, monkeypatch):
    """Each test's search index and Hugging Face cache in its own folder, for the commands it
    starts too: the suite never writes to the user's ~/.cache."""
    monkeypatch.setenv("SOUNDTAG_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))


@pytest.fixture(scope="session")
def tiny_clap(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("models") / "tiny-clap", "tiny")


@pytest.fixture(scope="session", autouse=True)
def export_dir(tmp_path_factory) -> Path:
    """Where the tests' ONNX exports and kept prompt embeddings go, in-process and in the processes
    tests start: one folder for the session (the tiny model is exported once), never the user's."""
    path = tmp_path_factory.mktemp("onnx-exports")
    os.environ["SOUNDTAG_EXPORT_DIR"] = str(path)
    return path


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


@pytest.fixture
def engine(database_url):
    """An engine on a migrated database, once on SQLite and once on PostgreSQL."""
    from db.schema import engine_for, ensure_schema

    engine = engine_for(database_url)
    ensure_schema(engine)
    yield engine
    engine_for.cache_clear()
    engine.dispose()


def soundtag(*args: str, cwd: Path | None = None, env: dict | None = None, check: bool = True):
    """Run the ``soundtag`` command as a user would, in a subprocess."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "soundtag.cli", *args], cwd=cwd or ROOT, env=full_env,
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"soundtag {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def query(url: str, sql: str) -> list:
    """Rows of ``sql`` on the database at ``url``, as a person's SQL client would see them."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        rows = conn.execute(text(sql)).all()
    engine.dispose()
    return rows


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    """Poll until ``predicate()`` is truthy; fail naming ``what`` after ``timeout`` seconds."""
    import time

    for _ in range(max(1, round(timeout / interval))):
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class WorkerProcess:
    """A real `soundtag worker` (Celery) subprocess with its log in a file."""

    def __init__(self, env: dict, log_path: Path, *extra: str):
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "soundtag.cli", "worker", *extra], cwd=ROOT,
                                     env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: "ready." in self.log() or self.proc.poll() is not None, 60, "the worker to start")
        assert self.proc.poll() is None, self.log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self, sig=9) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig if sig != 9 else signal.SIGKILL)
            self.proc.wait(30)
        self._log.close()

    def stop(self) -> None:
        import signal

        self.kill(signal.SIGTERM)


@pytest.fixture
def celery_env(tiny_clap, pg_url, tmp_path):
    """Environment for producer and workers of one test: its own queue on the local Redis and
    its own PostgreSQL database, so tests never see each other's messages or rows."""
    return {
        "SOUNDTAG_DATABASE_URL": pg_url,
        "SOUNDTAG_BROKER_URL": TEST_REDIS,
        "SOUNDTAG_QUEUE": f"test-{uuid.uuid4().hex[:8]}",
        "SOUNDTAG_MODEL": str(tiny_clap),
        "SOUNDTAG_VISIBILITY_TIMEOUT_S": "8",
        "HF_HOME": str(tmp_path / "hf"),
    }


@pytest.fixture
def workers(tmp_path):
    """Starts workers on demand and kills whatever is left at the end of the test."""
    started: list[WorkerProcess] = []

    def start(env: dict, *extra: str) -> WorkerProcess:
        worker = WorkerProcess(env, tmp_path / f"worker-{len(started)}.log", *extra)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


@pytest.fixture
def exporter(tmp_path):
    """Starts `soundtag exporter` on a free port, returns the port; stopped at the end of the test."""
    from tests.scrape import scrape

    started = []

    def start(env: dict) -> int:
        port = free_port()
        log = open(tmp_path / "exporter.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "soundtag.cli", "exporter", "--port", str(port), "--host",
                                 "127.0.0.1"], cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
        started.append((proc, log))

        def answers():
            try:
                return scrape(port)
            except OSError:
                assert proc.poll() is None, (tmp_path / "exporter.log").read_text()

        wait_for(answers, 30, "the exporter to answer")
        return port

    yield start
    for proc, log in started:
        proc.terminate()
        proc.wait(10)
        log.close()
