"""review/queue.py: the review page's rules without HTTP — versions, undo, progress and the learn
order — on a job whose results are stored directly (no model runs), in SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest

from db.embeddings import EmbeddingKey
from db.files import add_files
from db.jobs import create_job
from db.results import save_results
from model.results import FileResult, WindowResult
from review.learning import Learner
from review.order import Learning, Order, ordered
from review.queue import ReviewQueue, Session
from soundtag.errors import HeldByAnother, NoSuchItem, NotInTaxonomy, StaleVersion
from soundtag.fileref import FileRef
from soundtag.settings import Settings
from soundtag.states import Verdict
from soundtag.taxonomy import taxonomy_from_csv
from tests.conftest import query

LABELS = ["tone", "chirp", "noise"]
DIM = 8


def _job(engine, files: int, seed: int = 0) -> str:
    """A job over ``files`` two-window recordings, scored at random, their embeddings kept:
    the kind of each (file n is of kind n % 3) sets its embedding's direction."""
    rng = np.random.default_rng(seed)
    job = create_job(engine, taxonomy_from_csv(",".join(LABELS)), Settings(model="stored"), kind="run",
                     sources=["/archive"])
    uris = [f"file:///archive/{LABELS[n % 3]}{n}.wav" for n in range(files)]
    add_files(engine, job, [FileRef(uri, fingerprint=uri) for uri in uris])
    results = []
    for n, uri in enumerate(uris):
        windows = []
        for start in (0.0, 5.0):
            cosines = rng.uniform(0.0, 0.4, len(LABELS))
            scores = np.exp(10 * (cosines - cosines.max()))
            embedding = np.eye(DIM)[n % 3] + 0.2 * rng.standard_normal(DIM)
            windows.append(WindowResult(start, start + 5.0, scores / scores.sum(), cosines, embedding))
        mean = np.mean([w.similarity for w in windows], axis=0)
        scores = np.exp(10 * (mean - mean.max()))
        results.append(FileResult(uri, duration_s=10.0, sample_rate=16000, channels=1, scores=scores / scores.sum(),
                                  similarity=mean, segments=windows))
    save_results(engine, job, results, LABELS, EmbeddingKey("r1", 5.0, 5.0, "fp32"), logit_scale=10.0)
    return job


@pytest.fixture
def job(engine):
    return _job(engine, 6)


def _kind(item) -> str:
    return item.uri.rsplit("/", 1)[1].rstrip("0123456789.wav")


def _reviews(engine) -> list[tuple]:
    return [tuple(row) for row in query(str(engine.url.render_as_string(hide_password=False)),
                                        "select verdict, label, current from reviews order by reviewed_at")]


def test_a_verdict_on_a_version_already_judged_is_refused_and_records_nothing(engine, job):
    queue = ReviewQueue(engine, Session(job, Order.UNCERTAIN))
    assert queue.version(2) == 0 and queue.given(2) is None
    queue.give("ana", 2, 0, Verdict.REJECT)
    assert queue.version(2) == 1 and queue.given(2) == {"verdict": "reject", "label": queue.items[2].decision}
    with pytest.raises(StaleVersion):
        queue.give("ana", 2, 0, Verdict.ACCEPT)  # the second press of a double press
    assert [row[0] for row in _reviews(engine)] == ["reject"]
    queue.give("ana", 2, 1, Verdict.CORRECT, "noise")  # a verdict on what the page saw after the first
    assert queue.version(2) == 2 and queue.given(2) == {"verdict": "correct", "label": "noise"}
    assert _reviews(engine) == [("reject", queue.items[2].decision, 0), ("correct", "noise", 1)]


def test_an_unknown_item_or_a_label_outside_the_taxonomy_records_nothing(engine, job):
    queue = ReviewQueue(engine, Session(job, Order.UNCERTAIN))
    for n in (-1, 6, 10**6):
        with pytest.raises(NoSuchItem):
            queue.give("ana", n, 0, Verdict.ACCEPT)
    with pytest.raises(NotInTaxonomy):
        queue.give("ana", 0, 0, Verdict.CORRECT, "bird")
    assert _reviews(engine) == [] and queue.version(0) == 0


def test_undo_takes_back_the_reviewers_last_verdict_and_moves_its_version(engine, job):
    queue = ReviewQueue(engine, Session(job, Order.UNCERTAIN))
    assert queue.undo("ana") is None  # nothing to undo
    queue.give("ana", 1, 0, Verdict.ACCEPT)
    queue.give("ana", 4, 0, Verdict.REJECT)
    assert queue.progress()["reviewed"] == 2
    assert queue.undo("ana") == 4
    assert queue.given(4) is None and queue.version(4) == 2 and queue.progress()["reviewed"] == 1
    with pytest.raises(StaleVersion):
        queue.give("ana", 4, 1, Verdict.ACCEPT)  # judged on the version from before the undo
    assert queue.undo("ana") == 1 and queue.progress() == ReviewQueue(engine, Session(job, Order.UNCERTAIN)).progress()


def test_verdicts_in_force_from_before_are_shown_and_counted_per_label(engine, job):
    ReviewQueue(engine, Session(job, Order.UNCERTAIN)).give("ana", 3, 0, Verdict.CORRECT, "chirp")
    queue = ReviewQueue(engine, Session(job, Order.UNCERTAIN))  # a new session: read from the database
    assert queue.given(3) == {"verdict": "correct", "label": "chirp"}
    progress = queue.progress()
    assert progress["reviewed"] == 1 and progress["remaining"] == 5
    decided = queue.items[3].decision
    assert progress["per_label"][decided]["reviewed"] == 1
    assert sum(counts["total"] for counts in progress["per_label"].values()) == 6
    assert queue.undo("bo") is None  # bo gave none of them


def test_the_learn_order_follows_the_verdicts_as_a_fresh_one_would(sqlite_url):
    from db.schema import engine_for, ensure_schema

    engine = engine_for(sqlite_url)
    ensure_schema(engine)
    job = _job(engine, 40, seed=3)
    learner = Learner(engine, job, f"review-{job}")
    queue = ReviewQueue(engine, Session(job, Order.LEARN), learner)

    def fresh() -> list[int]:
        reviewed = [file_id for file_id, start, _ in queue._given if start is None]
        known = tuple(learner.vectors[i] for i in reviewed)
        return [item.file_id for item in ordered(queue.items, Order.LEARN, seed=job,
                                                 learning=Learning(learner.vectors, known))]

    shown = [item.file_id for _, item in queue.shown()]
    assert shown == fresh()
    assert {_kind(item) for _, item in queue.shown()[:3]} == set(LABELS)  # spread: one of each kind first
    # In the order shown (the cheap way), out of it, then an undo (the picks chosen afresh).
    for n in [queue.shown()[0][0], queue.shown()[0][0], queue.shown()[7][0], queue.shown()[1][0]]:
        queue.give("ana", n, queue.version(n), Verdict.ACCEPT)
        learner.wait()
        assert [item.file_id for _, item in queue.shown()] == fresh()
    queue.undo("ana")
    learner.wait()
    assert [item.file_id for _, item in queue.shown()] == fresh()
    assert sorted(n for n, _ in queue.shown()) == list(range(40))  # every item, once


def test_the_head_is_retrained_after_n_changed_verdicts_and_never_for_a_toggle(sqlite_url):
    from db.schema import engine_for, ensure_schema

    engine = engine_for(sqlite_url)
    ensure_schema(engine)
    job = _job(engine, 30, seed=5)
    learner = Learner(engine, job, "sounds", every=6)
    queue = ReviewQueue(engine, Session(job, Order.LEARN), learner)
    by_kind = {label: [n for n, item in enumerate(queue.items) if _kind(item) == label] for label in LABELS}

    def judge(n: int, verdict: Verdict = Verdict.CORRECT) -> None:
        queue.give("ana", n, queue.version(n), verdict, _kind(queue.items[n]) if verdict == Verdict.CORRECT else None)
        learner.wait()

    def versions() -> list[int]:
        return [row[0] for row in query(sqlite_url, "select version from head order by version")]

    for label in LABELS:
        judge(by_kind[label][0])
        judge(by_kind[label][1])
    assert versions() == [1]
    toggled = by_kind["tone"][2]
    for press in range(13):  # one item's verdict changed back and forth: one changed verdict
        judge(toggled, Verdict.REJECT if press % 2 == 0 else Verdict.CORRECT)
    assert versions() == [1] and learner.status()["since"] == 1
    for label in LABELS:  # five more make six
        judge(by_kind[label][3])
        if label != "noise":
            judge(by_kind[label][4])
    assert versions() == [1, 2] and learner.status()["since"] == 0


def test_a_team_is_handed_apart_and_a_verdict_on_anothers_item_is_refused(engine, job):
    queue = ReviewQueue(engine, Session(job, Order.UNCERTAIN), overlap=0.5)  # 3 of the 6 items to two people
    ana = [n for n, _ in queue.handed("ana", 2)]
    bob = [n for n, _ in queue.handed("bob", 2)]
    assert queue.handed("ana", 2) == [(n, queue.items[n]) for n in ana]  # asked again: the same, still hers
    sample = queue.handout.overlap
    assert all(queue.items[n].key in sample for n in set(ana) & set(bob))
    theirs = next(n for n in bob if n not in ana)
    with pytest.raises(HeldByAnother):
        queue.give("ana", theirs, 0, Verdict.ACCEPT)
    assert _reviews(engine) == []
    for n in ana:
        queue.give("ana", n, queue.version(n), Verdict.ACCEPT)
    assert not set(ana) & {n for n, _ in queue.handed("ana", 6)}  # never handed what she judged
    assert queue.undo("ana") == ana[-1] and ana[-1] in [n for n, _ in queue.handed("ana", 6)]  # hers again
    fresh = ReviewQueue(engine, Session(job, Order.UNCERTAIN), overlap=0.5)  # a restart reads who judged what
    assert ana[0] not in [n for n, _ in fresh.handed("ana", 6)]


def test_both_people_handed_an_overlap_item_are_heard_and_a_split_is_in_force_nowhere(engine, job):
    """Each person's page holds the version it was shown: the second person's verdict on an overlap
    item is theirs, not a second press (it was refused as stale when versions were shared), and a
    second press by either is still refused. Two who disagree leave nothing in force."""
    queue = ReviewQueue(engine, Session(job, Order.UNCERTAIN), overlap=1.0)  # every item to two people
    ana, bob = dict(queue.handed("ana", 6)), dict(queue.handed("bob", 6))
    both = next(n for n in ana if n in bob)
    shown_to_bob = queue.version(both, "bob")
    queue.give("ana", both, queue.version(both, "ana"), Verdict.ACCEPT)
    with pytest.raises(StaleVersion):
        queue.give("ana", both, 0, Verdict.ACCEPT)  # her second press
    assert queue.given(both) == {"verdict": Verdict.ACCEPT, "label": queue.items[both].decision}
    queue.give("bob", both, shown_to_bob, Verdict.REJECT)
    assert queue.given(both) is None  # one accept, one reject: split until an adjudicator settles it
    assert [row[0] for row in _reviews(engine)] == ["accept", "reject"]
