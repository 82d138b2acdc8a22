"""db/leases.py directly, on SQLite and PostgreSQL: who may claim a file, renewing, giving back,
and taking back the files of a worker that stopped renewing; the workers' names; the database's
clock as the only judge of expiry; and results fenced by the lease."""

import subprocess
import sys
import time
from datetime import timedelta

import numpy as np
import pytest

from db import leases
from db.files import add_files
from db.jobs import cancel_job, create_job, fail_job, job_info
from db.models import now
from db.progress import active_progress
from db.results import save_results
from model.results import FileResult
from soundtag.fileref import FileRef
from soundtag.settings import Settings
from soundtag.taxonomy import taxonomy_from_csv
from tests.conftest import ROOT, query

URIS = [f"file:///a/{name}" for name in ("a", "b", "c")]


@pytest.fixture
def job(engine):
    job_id = create_job(engine, taxonomy_from_csv("dog,rain"), Settings(model="m"), kind="enqueue",
                        sources=["/a"])
    add_files(engine, job_id, [FileRef(uri, fingerprint="1") for uri in URIS])
    return job_id


def test_a_live_lease_keeps_its_files_and_an_expired_one_gives_them_up(engine, job):
    assert leases.claim(engine, job, URIS, "w1:1", lease_s=60) == {uri: 0 for uri in URIS}
    assert leases.claim(engine, job, URIS, "w2:2", lease_s=60) == {}  # a redelivery while w1 lives
    assert leases.claim(engine, job, URIS[:1], "w1:1", lease_s=60) == {URIS[0]: 0}  # its own again
    assert leases.renew(engine, "w1:1", lease_s=-1) == 3  # w1 stops renewing: its leases are past
    assert leases.claim(engine, job, URIS[:2], "w2:2", lease_s=60) == {URIS[0]: 1, URIS[1]: 1}
    holders = leases.holders(engine, job)
    assert [(h.worker, h.files, h.lost) for h in holders] == [("w1:1", 1, True), ("w2:2", 2, False)]


def test_finished_files_are_neither_claimed_nor_renewed_and_keep_who_labeled_them(engine, job):
    leases.claim(engine, job, URIS, "w1:1", lease_s=60)
    save_results(engine, job, [FileResult(URIS[0], error="unreadable")], ["dog", "rain"], logit_scale=10.0)
    assert [(h.worker, h.files) for h in leases.holders(engine, job)] == [("w1:1", 2)]  # what it still labels
    assert leases.claim(engine, job, URIS[:1], "w1:1", lease_s=60) == {}  # a redelivery of a finished file
    assert leases.renew(engine, "w1:1", lease_s=60) == 2
    assert leases.give_back(engine, job, URIS, "w2:2") == []  # not w2's to give
    assert leases.give_back(engine, job, URIS, "w1:1") == URIS[1:]
    assert leases.claim(engine, job, URIS, "w2:2", lease_s=60) == {URIS[1]: 0, URIS[2]: 0}
    assert query(engine.url.render_as_string(hide_password=False),
                 "select f.uri, jf.worker from job_file jf join file f on f.id = jf.file_id order by 1") == [
        (URIS[0], "w1:1"), (URIS[1], "w2:2"), (URIS[2], "w2:2")]


def test_expired_leases_are_taken_back_once_and_sent_in_the_same_transaction(engine, job):
    leases.claim(engine, job, URIS, "w1:1", lease_s=-1)
    sent = []
    taken = leases.take_back_expired(engine, lambda job_id, uris: sent.append((job_id, uris)))
    assert [(t.job_id, t.worker, t.uris) for t in taken] == [(job, "w1:1", URIS)]
    assert sent == [(job, URIS)]
    assert leases.take_back_expired(engine, lambda *_: sent.append("again")) == []
    assert leases.holders(engine, job) == []

    leases.claim(engine, job, URIS, "w2:2", lease_s=-1)

    def broker_down(job_id, uris):
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        leases.take_back_expired(engine, broker_down)
    assert [(h.worker, h.files, h.lost) for h in leases.holders(engine, job)] == [("w2:2", 3, True)]


def test_a_job_that_is_not_active_has_nothing_to_claim_or_take_back(engine, job):
    leases.claim(engine, job, URIS, "w1:1", lease_s=-1)
    fail_job(engine, job, "model cannot load")
    assert leases.claim(engine, job, URIS, "w2:2", lease_s=60) == {}
    assert leases.take_back_expired(engine, lambda *_: None) == []


def _identity_of_a_process_named_like_another() -> str:
    """worker.heartbeat.identity() in a new process whose host and pid are those of every other
    such process, as in containers that share a hostname and each run their worker as pid 1."""
    code = ("import os, socket; os.getpid = lambda: 1; socket.gethostname = lambda: 'node'\n"
            "from worker.heartbeat import identity\n"
            "assert identity() == identity()\n"
            "print(identity())")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          check=True, timeout=120).stdout.strip()


def test_two_processes_with_one_host_and_pid_are_two_workers_and_only_one_claims_a_file(engine, job):
    first, second = _identity_of_a_process_named_like_another(), _identity_of_a_process_named_like_another()
    assert first != second
    assert first.startswith("node:1:") and second.startswith("node:1:")  # readable in `soundtag status`
    assert leases.claim(engine, job, URIS, first, lease_s=60) == {uri: 0 for uri in URIS}
    assert leases.claim(engine, job, URIS, second, lease_s=60) == {}
    assert [(h.worker, h.files) for h in leases.holders(engine, job)] == [(first, 3)]


def test_renewing_another_workers_lease_changes_nothing(engine, job):
    leases.claim(engine, job, URIS, "w1:1:a", lease_s=-1)  # expired: w1 stopped renewing
    assert leases.renew(engine, "w2:2:b", lease_s=60) == 0
    assert [(h.worker, h.lost) for h in leases.holders(engine, job)] == [("w1:1:a", True)]
    assert leases.claim(engine, job, URIS, "w2:2:b", lease_s=60) == {uri: 1 for uri in URIS}


def test_a_worker_whose_clock_runs_ahead_does_not_take_back_a_live_lease(engine, job, monkeypatch):
    leases.claim(engine, job, URIS, "w1:1:a", lease_s=60)
    ahead = now() + timedelta(seconds=120)
    # Every Python clock the db package could read: the models' now() and any module's copy of it.
    monkeypatch.setattr("db.models.now", lambda: ahead)
    monkeypatch.setattr("db.leases.now", lambda: ahead, raising=False)
    sent = []
    assert leases.take_back_expired(engine, lambda job_id, uris: sent.append(uris)) == []
    assert sent == []
    assert leases.claim(engine, job, URIS, "w2:2:b", lease_s=60) == {}
    assert [(h.worker, h.files, h.lost) for h in leases.holders(engine, job)] == [("w1:1:a", 3, False)]


def _labeled(uri: str) -> FileResult:
    return FileResult(uri, duration_s=1.0, scores=np.array([0.9, 0.1]), similarity=np.array([0.3, 0.1]))


def test_a_worker_that_lost_its_lease_saves_nothing_and_the_new_holders_result_is_kept_once(engine, job):
    url = engine.url.render_as_string(hide_password=False)
    leases.claim(engine, job, URIS[:1], "w1:1:a", lease_s=-1)  # w1 stalls past its lease
    assert leases.claim(engine, job, URIS[:1], "w2:2:b", lease_s=60) == {URIS[0]: 1}
    assert leases.take_back_expired(engine, lambda *_: None) == []
    # w1 wakes up and saves what it labeled: dropped, and said so
    assert save_results(engine, job, [_labeled(URIS[0])], ["dog", "rain"], logit_scale=10.0,
                        holder="w1:1:a") == [URIS[0]]
    assert query(url, "select count(*) from labeling") == [(0,)]
    assert query(url, "select jf.status, jf.worker from job_file jf join file f on f.id = jf.file_id "
                      f"where f.uri = '{URIS[0]}'") == [("queued", "w2:2:b")]
    assert save_results(engine, job, [_labeled(URIS[0])], ["dog", "rain"], logit_scale=10.0,
                        holder="w2:2:b") == []
    # a file taken back by the heartbeat (nobody holds it yet) is not w1's either
    leases.claim(engine, job, URIS[1:2], "w1:1:a", lease_s=-1)
    assert [t.uris for t in leases.take_back_expired(engine, lambda *_: None)] == [URIS[1:2]]
    assert save_results(engine, job, [FileResult(URIS[1], error="unreadable")], ["dog", "rain"],
                        logit_scale=10.0, holder="w1:1:a") == [URIS[1]]
    assert query(url, "select f.uri, count(l.id), min(jf.status) from file f join job_file jf on jf.file_id = f.id "
                      "left join labeling l on l.file_id = f.id group by f.uri order by 1") == [
        (URIS[0], 1, "done"), (URIS[1], 0, "queued"), (URIS[2], 0, "queued")]


@pytest.fixture
def second_job(engine):
    job_id = create_job(engine, taxonomy_from_csv("owl"), Settings(model="m"), kind="enqueue", sources=["/a"])
    add_files(engine, job_id, [FileRef(uri, fingerprint="1") for uri in URIS])
    return job_id


def test_giving_back_releases_only_the_named_files_of_that_job_and_sends_them(engine, job, second_job):
    leases.claim(engine, job, URIS, "w1:1", lease_s=-1)  # expired: given back, it must not be taken back too
    leases.claim(engine, second_job, URIS, "w1:1", lease_s=60)
    sent = []
    assert leases.give_back(engine, job, URIS[:1], "w1:1", sent.append) == URIS[:1]
    assert sent == [URIS[:1]]
    assert [(h.worker, h.files) for h in leases.holders(engine, job)] == [("w1:1", 2)]
    assert [(h.worker, h.files) for h in leases.holders(engine, second_job)] == [("w1:1", 3)]
    assert [t.uris for t in leases.take_back_expired(engine, lambda *_: None)] == [URIS[1:]]
    (progress,) = [p for p in active_progress(engine) if p.job_id == job]
    assert progress.since == job_info(engine, job).created_at.replace(tzinfo=progress.since.tzinfo)  # nobody on it


def test_the_fence_passes_only_the_files_asked_for_that_the_worker_holds_in_that_job(engine, job, second_job):
    leases.claim(engine, job, URIS[:2], "w1:1", lease_s=60)
    leases.claim(engine, second_job, URIS[2:], "w1:1", lease_s=60)
    ids = dict(query(engine.url.render_as_string(hide_password=False), "select uri, id from file"))
    with engine.begin() as conn:
        assert leases.held(conn, job, [ids[URIS[0]], ids[URIS[2]]], "w1:1") == {ids[URIS[0]]}


def test_a_job_cancelled_while_a_worker_labels_its_files_gets_none_of_their_results(engine, job):
    """The worker still holds its leases after `soundtag cancel`: the fence passes queued files
    only, so the results it was computing are dropped, not written over the cancellation."""
    leases.claim(engine, job, URIS[:2], "w1:1", lease_s=60)
    assert cancel_job(engine, job) == 3
    half = np.full(2, 0.5)
    dropped = save_results(engine, job, [FileResult(uri, duration_s=1.0, scores=half, similarity=half)
                                         for uri in URIS[:2]], ["dog", "rain"], logit_scale=1.0, holder="w1:1")
    assert sorted(dropped) == sorted(URIS[:2])
    assert job_info(engine, job).cancelled == 3 and job_info(engine, job).done == 0


def test_a_renewed_lease_lasts_its_length_from_now(engine, job):
    leases.claim(engine, job, URIS, "w1:1", lease_s=-1)
    assert leases.renew(engine, "w1:1", lease_s=60) == 3
    assert leases.claim(engine, job, URIS, "w2:2", lease_s=60) == {}


def test_expired_leases_are_taken_back_a_bounded_number_at_a_time_job_by_job(engine, job, second_job, monkeypatch):
    monkeypatch.setattr(leases, "TAKE_BACK", 3)
    leases.claim(engine, job, URIS, "w1:1", lease_s=-1)
    leases.claim(engine, second_job, URIS, "w1:1", lease_s=-1)
    first, second = sorted([job, second_job])
    assert [(t.job_id, t.uris) for t in leases.take_back_expired(engine, lambda *_: None)] == [(first, URIS)]
    assert [(t.job_id, t.uris) for t in leases.take_back_expired(engine, lambda *_: None)] == [(second, URIS)]


def test_a_take_back_counts_the_holder_lost_and_leaves_finished_files_alone(engine, job):
    leases.claim(engine, job, URIS, "w1:1", lease_s=-1)
    leases.take_back_expired(engine, lambda *_: None)
    (progress,) = [p for p in active_progress(engine) if p.job_id == job]
    assert progress.since == job_info(engine, job).created_at.replace(tzinfo=progress.since.tzinfo)  # nobody on it
    assert leases.claim(engine, job, URIS, "w2:2", lease_s=-1) == {uri: 1 for uri in URIS}
    save_results(engine, job, [_labeled(URIS[0])], ["dog", "rain"], logit_scale=10.0)  # finished late, kept
    assert [t.uris for t in leases.take_back_expired(engine, lambda *_: None)] == [URIS[1:]]


def test_a_claim_leases_the_files_of_its_own_job_only_and_only_while_that_job_is_active(engine, job, second_job):
    """The same files queued by two jobs are two leases: claiming them for one leaves the other's
    to its own workers, and an inactive job claims nothing even while another job of them runs."""
    assert leases.claim(engine, job, URIS[:2], "w1:1", lease_s=60) == {uri: 0 for uri in URIS[:2]}
    assert leases.holders(engine, second_job) == []
    assert leases.claim(engine, second_job, URIS, "w2:2", lease_s=60) == {uri: 0 for uri in URIS}
    fail_job(engine, job, "model cannot load")
    assert leases.claim(engine, job, URIS[2:], "w1:1", lease_s=60) == {}
    assert [(h.worker, h.files) for h in leases.holders(engine, job)] == [("w1:1", 2)]


def test_holders_say_since_when_each_worker_holds_files_and_until_when_oldest_first(engine, job, second_job):
    add_files(engine, job, [FileRef("file:///a/d", fingerprint="1")])

    def claim(job_id, uris, worker, lease_s=60):
        leases.claim(engine, job_id, uris, worker, lease_s=lease_s)
        time.sleep(0.01)  # SQLite's clock counts milliseconds

    claim(job, URIS[:1], "w1:1")
    claim(second_job, URIS, "w0:0")  # another job's: not counted
    claim(job, URIS[1:2], "w3:3", lease_s=120)
    claim(job, URIS[2:], "w2:2")
    claim(job, ["file:///a/d"], "w1:1")  # w1 holds files since its first claim
    holders = leases.holders(engine, job)
    assert [(h.worker, h.files) for h in holders] == [("w1:1", 2), ("w3:3", 1), ("w2:2", 1)]  # by since, not name
    w1, w3, w2 = holders
    assert w1.since < w3.since < w2.since
    assert (w3.until - w3.since, w2.until - w2.since) == (timedelta(seconds=120), timedelta(seconds=60))
    assert w1.until > w2.until  # the latest of its leases
    assert not any(h.lost for h in holders)


def test_a_job_of_one_file_has_it_claimed(engine):
    job_id = create_job(engine, taxonomy_from_csv("dog"), Settings(model="m"), kind="enqueue", sources=["/a/a"])
    add_files(engine, job_id, [FileRef(URIS[0], fingerprint="1")])
    assert leases.claim(engine, job_id, URIS, "w1:1", lease_s=60) == {URIS[0]: 0}


def test_a_worker_that_claims_its_own_expired_lease_again_has_not_lost_it(engine, job):
    """A redelivery to the worker that held the file (a slow batch, its lease past) is not a death:
    only a file taken over from another worker counts towards failing it."""
    leases.claim(engine, job, URIS, "w1:1", lease_s=-1)
    assert leases.claim(engine, job, URIS, "w1:1", lease_s=60) == {uri: 0 for uri in URIS}
    assert leases.renew(engine, "w1:1", lease_s=-1) == 3
    assert leases.claim(engine, job, URIS, "w2:2", lease_s=60) == {uri: 1 for uri in URIS}
