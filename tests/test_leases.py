"""db/leases.py directly, on SQLite and PostgreSQL: who may claim a file, renewing, giving back,
and taking back the files of a worker that stopped renewing."""

import pytest

from db import leases
from db.files import add_files
from db.jobs import create_job, fail_job
from db.results import save_results
from model.results import FileResult
from soundtag.fileref import FileRef
from soundtag.settings import Settings
from soundtag.taxonomy import taxonomy_from_csv
from tests.conftest import query

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
