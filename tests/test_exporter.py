"""The fleet's metrics (worker/exporter.py): a real `soundtag exporter` process against the local
Redis and PostgreSQL."""

from datetime import timedelta

import pytest

from db.models import now
from db.progress import Progress
from soundtag.fleet import queue_keys
from soundtag.states import FileState
from tests.audio_files import write
from tests.conftest import soundtag
from tests.scrape import scrape, value


def test_queue_length_is_the_length_of_the_queues_redis_list(tmp_path, celery_env, exporter):
    import redis

    archive = tmp_path / "archive"
    archive.mkdir()
    for i in range(5):
        write(archive / f"clip{i}.wav", seconds=1.0, rate=16000, freq=200.0 + 50 * i)
    queue = celery_env["SOUNDTAG_QUEUE"]
    job = soundtag("enqueue", str(archive), "--labels", "rain,siren", "--files-per-task", "2",
                   env=celery_env).stdout.strip().splitlines()[-1]
    port = exporter(celery_env)
    samples = scrape(port)

    broker = redis.Redis.from_url(celery_env["SOUNDTAG_BROKER_URL"])
    assert broker.llen(queue_keys(queue)[0]) == 3  # the batches wait where Celery's workers look
    assert value(samples, "soundtag_queue_length", queue=queue) == broker.llen(queue) == 3
    assert value(samples, "soundtag_queue_length", queue="soundtag.scan") == broker.llen("soundtag.scan")
    assert value(samples, "soundtag_jobs", state="active") == 1
    assert value(samples, "soundtag_jobs", state="completed") == 0
    assert value(samples, "soundtag_job_files", job=job, status="queued") == 5
    assert value(samples, "soundtag_job_files", job=job, status="done") == 0
    assert value(samples, "soundtag_job_eta_seconds", job=job) is None  # nothing finished: no rate yet


def test_eta_is_the_queued_files_at_the_rate_finished_so_far():
    progress = Progress("j", {**{state: 0 for state in FileState}, FileState.DONE: 30, FileState.FAILED: 10,
                              FileState.QUEUED: 120}, now() - timedelta(seconds=100))
    from worker.exporter import eta_seconds

    assert eta_seconds(progress) == pytest.approx(300, rel=0.01)  # 40 files in 100 s, 120 to go
