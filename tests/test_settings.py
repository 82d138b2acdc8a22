"""Settings defaults that depend on the machine."""

import os
import subprocess
import sys

import pytest

from soundtag.settings import Settings


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
