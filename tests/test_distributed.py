"""The distributed path on the real thing: Redis, PostgreSQL, `soundtag worker` processes."""

import base64
import json
import os
import re
import signal
import socket
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


def _execute(url, sql) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text(sql))
    engine.dispose()


def _held(url, job) -> int:
    """Files of the job a worker holds a lease on."""
    return query(url, f"select count(*) from job_file where job_id = '{job}' and status = 'queued' "
                      "and worker is not null")[0][0]


def _processed(*running) -> int:
    """Files the workers' finished tasks report having labeled."""
    return sum(int(n) for worker in running for n in re.findall(r"label_batch\[[^]]+\] succeeded in [\d.]+s: (\d+)",
                                                                 worker.log()))


def test_sigkill_mid_batch_with_the_defaults_gets_its_files_labeled_by_a_live_worker_within_two_minutes(
        tmp_path, celery_env, workers):
    """The documented defaults (6 h visibility timeout, 64 files a task, 60 s leases): the killed
    worker's message stays invisible, and the idle one (prefetch 1: one batch, one worker) takes
    its files back from SQL."""
    # the torch backend and one whole default batch of minute-long files: on a quiet machine the
    # tiny model labels 16 of them between two saves (2 s apart), so a shorter batch can end before
    # the kill
    env = {**{k: v for k, v in celery_env.items() if k != "SOUNDTAG_VISIBILITY_TIMEOUT_S"}, "SOUNDTAG_BACKEND": "torch"}
    n = 64
    archive = _archive(tmp_path / "archive", n, 60.0)
    url = env["SOUNDTAG_DATABASE_URL"]
    pair = [workers(env), workers(env)]
    job = _enqueue(env, archive)
    wait_for(lambda: _count(url, job, "done") >= 2, 180, "the first results")
    (holder,) = query(url, f"select distinct worker from job_file where job_id = '{job}' and status = 'queued'")
    (first,) = [w for w in pair if holder[0].startswith(f"{socket.gethostname()}:{w.proc.pid}:")]
    (survivor,) = [w for w in pair if w is not first]
    first.kill(signal.SIGKILL)
    assert _held(url, job) == _count(url, job, "queued") > 0, "the batch is not held, or ended before the kill"
    # Within the leases' reach (about a minute), not the visibility timeout's six hours.
    wait_for(lambda: _count(url, job, "queued") == 0, 120, "the killed worker's files to be labeled")
    # the survivor took them over: sent again by its heartbeat, or claimed by the redelivered message
    assert query(url, f"select count(*) from job_file where job_id = '{job}' and lost = 1")[0][0] > 0
    assert any(row[0].startswith(f"{socket.gethostname()}:{survivor.proc.pid}:")
               for row in query(url, f"select worker from job_file where job_id = '{job}'"))
    soundtag("status", job, "--wait", env=env)
    _assert_each_file_labeled_once(url, job, n)


def test_sigkill_of_a_prefork_child_gets_its_files_back(tmp_path, celery_env, workers):
    """The pool's parent hands the message back at once: the files whose leases expired by then
    are taken over by that delivery, the others come back when their leases expire."""
    n = 16
    env = {**celery_env, "SOUNDTAG_LEASE_S": "4", "SOUNDTAG_HEARTBEAT_S": "1", "SOUNDTAG_BACKEND": "torch"}
    archive = _archive(tmp_path / "archive", n, 60.0)
    url = env["SOUNDTAG_DATABASE_URL"]
    first = workers(env, "--pool", "prefork", "--concurrency", "1")
    job = _enqueue(env, archive, "--files-per-task", "8")
    # Mid-batch: a kill that lands between two batches leaves no lease to lose.
    wait_for(lambda: _count(url, job, "done") >= 2 and _held(url, job) > 0, 180, "the first results, and a batch held")
    children = subprocess.run(["pgrep", "-P", str(first.proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) == 1, children
    os.kill(int(children[0]), signal.SIGKILL)
    assert _count(url, job, "queued") > 0, "the job ended before the kill: make it longer"
    soundtag("status", job, "--wait", env=env)
    _assert_each_file_labeled_once(url, job, n)
    assert query(url, f"select count(*) from job_file where job_id = '{job}' and lost = 1")[0][0] > 0


def test_a_live_batch_longer_than_its_lease_and_visibility_timeout_is_labeled_once(tmp_path, celery_env, workers):
    """The heartbeat keeps the lease; the message Redis redelivers after the visibility timeout
    (8 s here) finds its files held by a live worker and labels nothing."""
    n = 48
    env = {**celery_env, "SOUNDTAG_LEASE_S": "3", "SOUNDTAG_HEARTBEAT_S": "1", "SOUNDTAG_BACKEND": "torch"}
    archive = _archive(tmp_path / "archive", n, 180.0)
    url = env["SOUNDTAG_DATABASE_URL"]
    busy = workers(env)
    job = _enqueue(env, archive)
    wait_for(lambda: _held(url, job) > 0, 60, "the batch to start")
    assert re.search(rf"held by {re.escape(socket.gethostname())}:{busy.proc.pid}:\w+: {n} files since",
                     soundtag("status", job, env=env).stdout)
    idle = workers(env)
    wait_for(lambda: "label_batch" in idle.log() and "received" in idle.log(), 120, "the batch to be redelivered")
    assert _count(url, job, "queued") > 0, "the batch ended before its redelivery: make it longer"
    soundtag("status", job, "--wait", env=env)
    _assert_each_file_labeled_once(url, job, n)
    wait_for(lambda: "succeeded" in busy.log() and "succeeded" in idle.log(), 60, "both deliveries to finish")
    assert _processed(busy, idle) == n
    assert "sent again" not in busy.log() + idle.log()


def test_sigterm_finishes_the_file_in_hand_and_sends_the_rest_again_at_once(tmp_path, celery_env, workers):
    import redis

    n = 40
    archive = _archive(tmp_path / "archive", n, 60.0)
    url = celery_env["SOUNDTAG_DATABASE_URL"]
    broker = redis.Redis.from_url(celery_env["SOUNDTAG_BROKER_URL"])
    first = workers({**celery_env, "SOUNDTAG_BACKEND": "torch"})  # slow enough to stop mid-batch
    job = _enqueue(celery_env, archive)
    wait_for(lambda: _count(url, job, "done") >= 1, 180, "the first results")
    first.stop()
    assert first.proc.returncode == 0
    rest = _count(url, job, "queued")
    assert rest > 0, "the batch ended before the signal: make it longer"
    assert f"stopping: {rest} files of job {job} sent again" in first.log()
    assert _held(url, job) == 0
    batches = [json.loads(base64.b64decode(json.loads(m)["body"]))[0][1]
               for m in broker.lrange(celery_env["SOUNDTAG_QUEUE"], 0, -1)]
    # Besides the rest sent again, the tests' seconds-long visibility timeout may have put the
    # original batch back (all n files; its leases make it do nothing twice).
    (sent,) = [files for files in batches if len(files) != n]
    assert len(sent) == rest
    workers(celery_env)
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
    lines = soundtag("jobs", env=celery_env).stdout.splitlines()
    header = [cell.strip() for cell in next(line for line in lines if "cancelled" in line).split("┃")]
    row = [cell.strip() for cell in next(line for line in lines if job in line).split("│")]
    assert row[header.index("cancelled")] == "4"
    assert query(url, "select count(*) from labeling")[0][0] == 0


def test_files_of_a_lost_worker_go_back_one_per_task_and_a_culprit_fails_alone(tmp_path, celery_env, monkeypatch):
    """A worker that dies leaves only its expired leases behind; this test plants the leases two
    such deaths leave and runs the heartbeat and the task as a live worker would."""
    import redis

    for key, value in celery_env.items():
        monkeypatch.setenv(key, value)
    from db.schema import engine_for
    from soundtag.settings import Settings
    from worker import heartbeat, tasks

    tasks._settings.cache_clear()
    url = celery_env["SOUNDTAG_DATABASE_URL"]
    archive = _archive(tmp_path / "archive", 3, 1.0)
    job = _enqueue(celery_env, archive, "--files-per-task", "3")
    broker = redis.Redis.from_url(celery_env["SOUNDTAG_BROKER_URL"])
    queue = celery_env["SOUNDTAG_QUEUE"]
    assert broker.llen(queue) == 1
    message = json.loads(broker.lpop(queue))
    uris = json.loads(base64.b64decode(message["body"]))[0][1]

    expire = ("update job_file set worker = 'gone:1', leased_at = now() - interval '2 minutes', "
              "lease_until = now() - interval '1 minute'")
    _execute(url, f"{expire} where job_id = '{job}'")
    status = soundtag("status", job, env=celery_env).stdout
    assert "lost gone:1: 3 files since" in status and "live workers take them back" in status
    heartbeat.beat_once(Settings())
    assert broker.llen(queue) == 3  # one task per file, so a culprit can fail alone
    assert query(url, f"select count(*), min(lost), max(lost) from job_file where job_id = '{job}' "
                      "and worker is null") == [(3, 1, 1)]
    broker.delete(queue)

    # the first file killed two more workers; the third one to hold it is lost as well
    _execute(url, f"{expire}, lost = 2 where job_id = '{job}' and file_id = "
                  f"(select id from file where uri = '{uris[0]}')")
    tasks.label_batch.apply(args=(job, uris[:1]))
    assert query(url, f"select status, error from job_file where job_id = '{job}' and status = 'failed'") == [
        ("failed", "worker died 3 times while labeling this file")]
    tasks.label_batch.apply(args=(job, uris[1:]))
    assert _count(url, job, "done") == 2
    assert query(url, f"select finished_at is not null from job where id = '{job}'")[0][0]
    engine_for.cache_clear()


def test_enqueue_with_the_broker_down_says_so_in_one_line_and_records_no_job(tmp_path, celery_env):
    url = celery_env["SOUNDTAG_DATABASE_URL"]
    env = {**celery_env, "SOUNDTAG_BROKER_URL": f"redis://user:secret@127.0.0.1:{free_port()}/0"}
    proc = soundtag("enqueue", str(_archive(tmp_path / "archive", 2, 1.0)), "--labels", LABELS, env=env, check=False)
    assert proc.returncode != 0
    (line,) = proc.stderr.strip().splitlines()
    assert "unreachable" in line and "SOUNDTAG_BROKER_URL" in line and "secret" not in line, line
    assert query(url, "select count(*) from job")[0][0] == 0


def test_broker_gone_while_sending_fails_the_job_and_requeue_sends_it_again(tmp_path, celery_env, workers):
    from db.schema import engine_for, ensure_schema
    from producer.enqueue import enqueue
    from soundtag.errors import BrokerError
    from soundtag.settings import Settings
    from soundtag.sources.walk import walk
    from soundtag.taxonomy import taxonomy_from_csv

    n = 4
    url = celery_env["SOUNDTAG_DATABASE_URL"]
    proxy = TcpProxy(6379, free_port())
    proxy.start()
    env = {**celery_env, "SOUNDTAG_BROKER_URL": f"redis://127.0.0.1:{proxy.port}/0"}
    settings = Settings(**{k.removeprefix("SOUNDTAG_").lower(): v for k, v in env.items() if k.startswith("SOUNDTAG_")})
    engine = engine_for(url)
    ensure_schema(engine)

    def listing_then_outage():  # the broker answers the check, then goes away before the batches go out
        yield from walk(str(_archive(tmp_path / "archive", n, 1.0)))
        proxy.stop()

    with pytest.raises(BrokerError, match=r"failed while sending: .*unreachable.*`soundtag requeue \w+`"):
        enqueue(engine, listing_then_outage(), taxonomy_from_csv(LABELS), settings, sources=["archive"])
    ((job, state, error, queued),) = query(url, "select job_id, state, error, queued from jobs")
    assert (state, queued) == ("failed", n) and error.startswith("sending failed: broker"), error

    proxy.start()
    workers(env)
    assert f"{n} files sent again" in soundtag("requeue", job, env=env).stdout
    soundtag("status", job, "--wait", env=env)
    _assert_each_file_labeled_once(url, job, n)
    proxy.stop()
    engine_for.cache_clear()
