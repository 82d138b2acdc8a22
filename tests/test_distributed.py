"""The distributed path on the real thing: Redis, PostgreSQL, `soundtag worker` processes."""

import base64
import json
import os
import signal
import subprocess

import pytest

from tests.audio_files import write
from tests.conftest import free_port, query, soundtag, wait_for
from tests.tcp_proxy import TcpProxy

LABELS = "dog barking,rain,siren"


def _count(url, job, status):
    return query(url, f"select count(*) from job_file where job_id = '{job}' and status = '{status}'")[0][0]


def _archive(root, n, seconds):
    for i in range(n):
        write(root / f"clip{i:03d}.wav", seconds=seconds, rate=22050, freq=100.0 + 37 * i)
    return root


def _enqueue(env, archive, *extra):
    proc = soundtag("enqueue", str(archive), "--labels", LABELS, *extra, env=env)
    return proc.stdout.strip().splitlines()[-1]


def _assert_each_file_labeled_once(url, job, n):
    assert _count(url, job, "done") == n
    assert query(url, "select count(*) from labeling")[0][0] == n
    assert query(url, "select count(*), count(distinct uri) from file_labels where rank = 1")[0] == (n, n)
    assert query(url, "select count(*) from file_labels")[0][0] == 3 * n


def test_job_end_to_end_through_redis_and_a_worker(tmp_path, celery_env, workers):
    archive = _archive(tmp_path / "archive", 5, 3.0)
    (archive / "broken.flac").write_bytes(b"fLaC" + b"\x00" * 100)
    workers(celery_env)
    job = _enqueue(celery_env, archive, "--files-per-task", "2")

    done = soundtag("status", job, "--wait", env=celery_env)
    assert f"job {job} (enqueue, completed): 5 done, 1 failed, 0 queued of 6" in done.stdout
    url = celery_env["SOUNDTAG_DATABASE_URL"]
    assert query(url, "select status, error from files where uri like '%broken.flac'")[0][0] == "failed"
    assert query(url, f"select finished_at is not null from job where id = '{job}'")[0][0]
    assert job in soundtag("jobs", env=celery_env).stdout
    assert "5 done, 1 failed, 0 queued" in soundtag("status", job, "--watch", env=celery_env).stdout

    again = _enqueue(celery_env, archive)  # labeled files are skipped, and so is the unchanged failed one
    assert "0 done, 0 failed, 0 queued, 6 skipped of 6" in soundtag("status", again, "--wait", env=celery_env).stdout
    retried = _enqueue(celery_env, archive, "--retry-failed")
    assert "0 done, 1 failed, 0 queued, 5 skipped of 6" in soundtag("status", retried, "--wait", env=celery_env).stdout


def _in_flight(broker, known: set) -> set:
    """Batches started and not finished: their attempt counters (leftovers of other tests excepted)."""
    return {key for key in broker.keys("soundtag:attempts:*") if key not in known}


@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_sigkill_mid_batch_gives_the_batch_back_and_each_file_is_labeled_once(pool, tmp_path, celery_env, workers):
    """solo: the whole worker dies and a new one takes the batch back after the visibility
    timeout. prefork: the pool process running the batch dies and its parent hands it back."""
    import redis

    n = 16
    archive = _archive(tmp_path / "archive", n, 60.0)
    url = celery_env["SOUNDTAG_DATABASE_URL"]
    broker = redis.Redis.from_url(celery_env["SOUNDTAG_BROKER_URL"])
    known = set(broker.keys("soundtag:attempts:*"))
    first = workers(celery_env, "--pool", pool, "--concurrency", "1")
    job = _enqueue(celery_env, archive, "--files-per-task", "2")
    wait_for(lambda: _count(url, job, "done") >= 2 and _in_flight(broker, known), 180, "a batch in flight")
    if pool == "solo":
        first.kill(signal.SIGKILL)
    else:
        children = subprocess.run(["pgrep", "-P", str(first.proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) == 1, children
        os.kill(int(children[0]), signal.SIGKILL)
    assert _in_flight(broker, known), "no batch was in flight at the kill"
    assert _count(url, job, "queued") > 0, "the job ended before the kill: make it longer"

    survivor = workers(celery_env) if pool == "solo" else first
    # The killed batch itself comes back (acks_late, reject_on_worker_lost): its second delivery
    # is recognised and split.
    wait_for(lambda: "came back after a worker died" in survivor.log(), 120, "the killed batch to come back")
    soundtag("status", job, "--wait", env=celery_env)
    _assert_each_file_labeled_once(url, job, n)


def test_model_that_cannot_load_fails_the_job_once_and_erases_nothing(tmp_path, celery_env, workers, tiny_clap):
    import shutil

    url = celery_env["SOUNDTAG_DATABASE_URL"]
    archive = _archive(tmp_path / "archive", 4, 2.0)
    worker = workers(celery_env)
    good = _enqueue(celery_env, archive)
    soundtag("status", good, "--wait", env=celery_env)
    before = query(url, "select uri, model, label, score from file_labels order by 1, 2, 3")

    broken = tmp_path / "clap-without-weights"  # a valid config, so the producer accepts it
    shutil.copytree(tiny_clap, broken)
    (broken / "model.safetensors").rename(tmp_path / "weights.safetensors")
    env = {**celery_env, "SOUNDTAG_MODEL": str(broken)}
    job = _enqueue(env, archive, "--files-per-task", "1")
    status = soundtag("status", job, "--wait", env=env, check=False)
    assert status.returncode == 4, status.stdout
    assert f"job {job} (enqueue, failed): 0 done, 0 failed, 4 queued of 4" in status.stdout
    assert f"error: model {broken}: cannot load" in status.stdout
    assert query(url, f"select state, error like 'model %: cannot load%' from jobs where job_id = '{job}'") == [
        ("failed", True)]
    wait_for(lambda: _count(url, job, "queued") == 4 and worker.log().count(f"job {job} failed") == 1
             and "dropping 1 files" in worker.log(), 60, "the job's other batches to be dropped")
    assert worker.log().count(f"job {job} failed") == 1
    assert query(url, "select distinct status from files") == [("done",)]
    assert query(url, "select uri, model, label, score from file_labels order by 1, 2, 3") == before

    (tmp_path / "weights.safetensors").rename(broken / "model.safetensors")  # the fix
    assert "4 files sent again" in soundtag("requeue", job, env=env).stdout
    done = soundtag("status", job, "--wait", env=env)
    assert f"job {job} (enqueue, completed): 4 done, 0 failed, 0 queued of 4" in done.stdout


def test_message_of_an_unknown_job_is_dropped_and_changes_nothing(tmp_path, celery_env, workers):
    from soundtag.fleet import Sender
    from soundtag.settings import Settings

    url = celery_env["SOUNDTAG_DATABASE_URL"]
    archive = _archive(tmp_path / "archive", 2, 2.0)
    worker = workers(celery_env)
    job = _enqueue(celery_env, archive)
    soundtag("status", job, "--wait", env=celery_env)
    before = query(url, "select uri, status, error, updated_at from file order by uri")

    settings = Settings(**{k.removeprefix("SOUNDTAG_").lower(): v for k, v in celery_env.items()
                           if k.startswith("SOUNDTAG_")})
    sender = Sender("no-such-job", settings)
    sender.send([row.uri for row in before])
    sender.close()
    wait_for(lambda: "job no-such-job: no such job; dropping 2 files" in worker.log(), 60, "the message to be dropped")
    assert query(url, "select uri, status, error, updated_at from file order by uri") == before
    assert _count(url, job, "done") == 2


@pytest.fixture
def own_redis(tmp_path):
    """A Redis of the test's own, with the append-only file production uses, so it can be restarted."""
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
           "--appendonly", "yes", "--appendfsync", "always", "--save", ""]

    class Server:
        url = f"redis://127.0.0.1:{port}/0"

        def start(self):
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
            wait_for(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout
                     .strip() == b"PONG", 20, "redis to start")

        def stop(self):
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)

    server = Server()
    server.start()
    yield server
    if server.proc.poll() is None:
        server.stop()


def test_redis_restart_mid_job_then_job_completes(tmp_path, celery_env, workers, own_redis):
    n = 24
    env = {**celery_env, "SOUNDTAG_BROKER_URL": own_redis.url}
    url = env["SOUNDTAG_DATABASE_URL"]
    archive = _archive(tmp_path / "archive", n, 30.0)
    workers(env)
    job = _enqueue(env, archive, "--files-per-task", "2")
    wait_for(lambda: _count(url, job, "done") >= 2, 120, "the first results")
    own_redis.stop()
    assert _count(url, job, "queued") > 0, "the job ended before the restart: make it longer"
    subprocess.run(["sleep", "2"])
    own_redis.start()
    soundtag("status", job, "--wait", env=env)
    _assert_each_file_labeled_once(url, job, n)


def test_database_unreachable_for_a_while_then_job_completes(tmp_path, celery_env, workers):
    n = 16
    url = celery_env["SOUNDTAG_DATABASE_URL"]
    proxy = TcpProxy(5432, free_port())
    proxy.start()
    worker_env = {**celery_env, "SOUNDTAG_DATABASE_URL": url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")}
    archive = _archive(tmp_path / "archive", n, 30.0)
    worker = workers(worker_env)
    proxy.stop()  # the outage starts before the job, so no batch can slip through first
    job = _enqueue(celery_env, archive, "--files-per-task", "2")
    wait_for(lambda: "OperationalError; retrying in" in worker.log(), 60, "the worker to notice the outage")
    assert _count(url, job, "queued") == n
    subprocess.run(["sleep", "3"])
    proxy.start()
    soundtag("status", job, "--wait", env=celery_env)
    _assert_each_file_labeled_once(url, job, n)


def test_cancel_drops_queued_work_and_keeps_results(tmp_path, celery_env, workers):
    url = celery_env["SOUNDTAG_DATABASE_URL"]
    archive = _archive(tmp_path / "archive", 4, 2.0)
    job = _enqueue(celery_env, archive)  # no worker yet: everything stays queued
    assert "4 queued files dropped" in soundtag("cancel", job, env=celery_env).stdout
    workers(celery_env)
    status = soundtag("status", job, "--wait", env=celery_env, check=False)
    assert status.returncode == 3 and "4 cancelled" in status.stdout
    assert query(url, "select count(*) from labeling")[0][0] == 0


def test_batch_that_keeps_killing_workers_is_split_and_its_culprit_fails_alone(tmp_path, celery_env, monkeypatch):
    """A worker that dies mid-batch leaves only a counter in Redis behind; this test plants the
    counter that two such deaths leave and runs the task as the next delivery would."""
    import redis

    for key, value in celery_env.items():
        monkeypatch.setenv(key, value)
    from db.schema import engine_for
    from worker import tasks

    tasks._settings.cache_clear()
    tasks._redis.cache_clear()
    url = celery_env["SOUNDTAG_DATABASE_URL"]
    archive = _archive(tmp_path / "archive", 3, 1.0)
    job = _enqueue(celery_env, archive, "--files-per-task", "3")
    broker = redis.Redis.from_url(celery_env["SOUNDTAG_BROKER_URL"])
    queue = celery_env["SOUNDTAG_QUEUE"]
    assert broker.llen(queue) == 1
    message = json.loads(broker.lpop(queue))
    uris = json.loads(base64.b64decode(message["body"]))[0][1]

    broker.set("soundtag:attempts:batch-1", 1)  # one delivery already died
    tasks.label_batch.apply(args=(job, uris), task_id="batch-1")
    assert broker.llen(queue) == 3  # one task per file, each with its own attempt count
    assert _count(url, job, "queued") == 3

    broker.set("soundtag:attempts:one-file", 3)  # that file's task killed three workers
    tasks.label_batch.apply(args=(job, uris[:1]), task_id="one-file")
    assert query(url, f"select status, error from job_file where job_id = '{job}' and status = 'failed'") == [
        ("failed", "worker died 3 times while labeling this file")]
    tasks.label_batch.apply(args=(job, uris[1:]), task_id="the-rest")
    assert _count(url, job, "done") == 2
    assert query(url, f"select finished_at is not null from job where id = '{job}'")[0][0]
    broker.delete(queue)
    engine_for.cache_clear()
