"""A worker's Prometheus metrics (worker/metrics.py), scraped from a real `soundtag worker` under
the prefork pool and compared with what the database holds."""

import pytest

from soundtag.settings import Settings
from tests.audio_files import write
from tests.conftest import free_port, query, soundtag, wait_for
from tests.scrape import scrape, value


def _counts(url, job) -> dict:
    return dict(query(url, f"select status, count(*) from job_file where job_id = '{job}' group by status"))


@pytest.mark.slow
def test_prefork_workers_counters_equal_the_database_counts(tmp_path, celery_env, workers):
    archive = tmp_path / "archive"
    archive.mkdir()
    for i in range(5):
        write(archive / f"clip{i}.wav", seconds=2.0, rate=16000, freq=200.0 + 50 * i)
    (archive / "broken.flac").write_bytes(b"fLaC" + b"\x00" * 100)
    port = free_port()
    env = {**celery_env, "SOUNDTAG_METRICS_PORT": str(port)}
    url = env["SOUNDTAG_DATABASE_URL"]
    workers(env, "--pool", "prefork", "--concurrency", "2")
    job = soundtag("enqueue", str(archive), "--labels", "rain,siren", "--files-per-task", "1",
                   env=env).stdout.strip().splitlines()[-1]
    soundtag("status", job, "--wait", env=env)
    # Each child counted what it labeled: the sum is only right if both are read.
    assert query(url, f"select count(distinct worker) from job_file where job_id = '{job}'")[0][0] == 2

    samples = wait_for(lambda: (s := scrape(port)) and value(s, "soundtag_batch_seconds_count") == 6 and s, 30,
                       "every batch to be timed")
    db = _counts(url, job)
    assert db == {"done": 5, "failed": 1}
    assert value(samples, "soundtag_files_total", status="done") == db["done"]
    assert value(samples, "soundtag_files_total", status="failed") == db["failed"]
    assert value(samples, "soundtag_files_total", status="skipped") == 0
    assert value(samples, "soundtag_failures_total", reason="decode") == 1
    assert sum(s.value for s in samples if s.name == "soundtag_failures_total") == 1
    assert value(samples, "soundtag_windows_total") == query(url, "select count(*) from segment")[0][0] > 0
    assert value(samples, "soundtag_save_seconds_count") >= 2
    assert value(samples, "soundtag_decode_seconds_count") == 6
    assert value(samples, "soundtag_model_seconds_count") >= 2
    (model,) = [s.labels for s in samples if s.name == "soundtag_model_info"]
    assert model["model"] == env["SOUNDTAG_MODEL"] and model["device"] == "cpu" and model["dtype"] == "fp32"
    assert not any("/" in v or "\\" in v for s in samples for k, v in s.labels.items() if k != "model"), \
        "a URI or a path in a label"

    # The same batches again: a redelivery finds them finished and labels nothing.
    from soundtag.fleet import Sender

    uris = [row[0] for row in query(url, f"select f.uri from job_file j join file f on f.id = j.file_id "
                                         f"where j.job_id = '{job}'")]
    sender = Sender(job, Settings(broker_url=env["SOUNDTAG_BROKER_URL"], queue=env["SOUNDTAG_QUEUE"]))
    sender.send(uris)
    sender.close()
    samples = wait_for(lambda: (s := scrape(port)) and value(s, "soundtag_files_total", status="skipped") == 6 and s,
                       30, "the redelivered files to be skipped")
    assert value(samples, "soundtag_files_total", status="done") == 5
