"""soundtag/fleet.py: the Celery app takes its broker from the settings of the moment it is
first used, so nothing fixes it at import (a test suite, a worker started with a new environment)."""

from __future__ import annotations

import subprocess
import sys
import uuid

import redis

from tests.conftest import ROOT, TEST_REDIS


def test_the_broker_is_read_when_the_app_is_first_used_not_at_import():
    queue = f"test-{uuid.uuid4().hex[:8]}"
    configured = redis.Redis.from_url(TEST_REDIS)
    db = configured.connection_pool.connection_kwargs.get("db", 0)
    other_url = TEST_REDIS.rsplit("/", 1)[0] + f"/{(int(db) + 7) % 16}"
    other = redis.Redis.from_url(other_url)
    code = ("import os, soundtag.fleet as fleet\n"
            f"os.environ['SOUNDTAG_BROKER_URL'] = {other_url!r}\n"
            f"fleet.app.send_task('soundtag.nothing', queue={queue!r})\n")
    try:
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
        assert other.llen(queue) == 1
        assert configured.llen(queue) == 0
    finally:
        other.delete(queue)
        configured.delete(queue)
