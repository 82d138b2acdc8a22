"""Settings defaults that depend on the machine, and a bad setting in a process that soundtag's
command does not start (a Celery worker or beat, the alembic command)."""

import os
import subprocess
import sys

import pytest

from soundtag.settings import Settings
from tests.conftest import ROOT


@pytest.fixture(autouse=True)
def _no_override(monkeypatch):
    monkeypatch.delenv("SOUNDTAG_DECODE_THREADS", raising=False)


def test_decode_threads_default_to_the_usable_cpus():
    assert Settings().decode_threads == len(os.sched_getaffinity(0))


def test_decode_threads_follow_a_narrowed_cpu_affinity():
    first = min(os.sched_getaffinity(0))
    code = (f"import os; os.sched_setaffinity(0, {{{first}}}); "
            "from soundtag.settings import Settings; print(Settings().decode_threads)")
    env = {k: v for k, v in os.environ.items() if k != "SOUNDTAG_DECODE_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "1"


def test_decode_threads_can_be_set(monkeypatch):
    monkeypatch.setenv("SOUNDTAG_DECODE_THREADS", "5")
    assert Settings().decode_threads == 5


@pytest.mark.parametrize("command", [
    ["celery", "-A", "soundtag.fleet", "worker", "--pool", "solo"],
    ["celery", "-A", "soundtag.fleet", "beat"],
    ["alembic", "-c", "db/alembic.ini", "upgrade", "head"],
], ids=["worker", "beat", "migration"])
def test_a_bad_setting_stops_a_worker_beat_or_migration_with_one_line_naming_it(command, tmp_path):
    env = {**os.environ, "SOUNDTAG_LEASE_S": "soon", "SOUNDTAG_DATABASE_URL": f"sqlite:///{tmp_path / 'db'}"}
    proc = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: --lease-s (SOUNDTAG_LEASE_S) 'soon': Input should be a valid number, unable to parse string as a number"]


def test_soundtag_worker_hands_its_backend_and_dtype_to_the_celery_worker_it_starts(monkeypatch):
    """`soundtag worker --dtype int8` execs Celery with the settings in the environment the task
    reads them from (tasks build their Settings from it); a dtype that is none is refused first."""
    from typer.testing import CliRunner

    from soundtag.cli import app

    started = {}
    monkeypatch.setattr(os, "execv", lambda exe, argv: started.update(argv=argv, env=dict(os.environ)))
    for name in ("SOUNDTAG_DTYPE", "SOUNDTAG_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(app, ["worker", "--backend", "onnx", "--dtype", "int8", "--queue", "q1"])
    assert result.exit_code == 0, result.output
    assert started["argv"][started["argv"].index("--queues") + 1] == "q1"
    assert (started["env"]["SOUNDTAG_BACKEND"], started["env"]["SOUNDTAG_DTYPE"]) == ("onnx", "int8")
    assert Settings().dtype == "int8"  # what the worker's task reads
    started.clear()
    result = CliRunner().invoke(app, ["worker", "--dtype", "int4"])
    assert result.exit_code == 1 and not started
    assert "--dtype" in str(result.exception)
