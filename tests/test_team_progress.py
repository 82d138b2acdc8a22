"""review/team.py and the queue's team reads, without HTTP: the disputes `--order adjudicate`
shows (with who said what) and what an adjudication settles, and the admin's progress numbers
against hand counts, in SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

from sqlalchemy import text

from db.reviewers import add_reviewer
from db.reviews import Given, given_verdicts, record_verdicts
from review.order import Order
from review.queue import ReviewQueue, Session
from soundtag.agreement import Score
from soundtag.states import Role, Verdict
from tests.test_review_queue import LABELS, _job


def _vote(engine, job, item, person, verdict=Verdict.ACCEPT, label=None):
    record_verdicts(engine, {job: [Given(item.file_id, verdict, person, label if verdict == Verdict.CORRECT
                                         else item.decision, shown=item.decision)]})


def test_adjudication_shows_the_disputes_with_everyones_vote_and_settles_them(engine):
    job = _job(engine, 6)
    queue = ReviewQueue(engine, Session(job, Order.UNCERTAIN))
    split, agreed, majority = queue.items[:3]
    other = next(label for label in LABELS if label != split.decision)
    _vote(engine, job, split, "ana")
    _vote(engine, job, split, "bob", Verdict.CORRECT, other)
    _vote(engine, job, agreed, "ana")
    _vote(engine, job, agreed, "bob")
    for person in ("ana", "bob"):
        _vote(engine, job, majority, person)
    _vote(engine, job, majority, "cy", Verdict.REJECT)  # outvoted: settled, yet not agreed
    lead = ReviewQueue(engine, Session(job, Order.ADJUDICATE))
    disputes = {item.key: votes for _, item, votes in lead.disputes()}
    assert disputes == {split.key: {"ana": split.decision, "bob": other},
                        majority.key: {"ana": majority.decision, "bob": majority.decision, "cy": None}}
    assert [item.key for _, item in lead.shown()] == sorted(disputes)  # by file and time
    assert given_verdicts(engine, [split.file_id]) == []  # split: nothing to learn from yet
    n = next(n for n, item in lead.shown() if item.key == split.key)
    lead.give("lead", n, 0, Verdict.CORRECT, other)
    assert [item.key for _, item in lead.shown()] == [majority.key]  # it left the queue
    taught = given_verdicts(engine, [split.file_id])
    assert [(v.verdict, v.label) for v in taught] == [(Verdict.CORRECT, other)]
    assert ReviewQueue(engine, Session(job, Order.ADJUDICATE)).disputes()[0][1].key == majority.key


def test_the_team_progress_counts_what_each_person_did_and_each_label_has_left(engine):
    job = _job(engine, 6)
    for name, role in [("ana", Role.REVIEWER), ("bob", Role.REVIEWER), ("lead", Role.ADMIN)]:
        add_reviewer(engine, name, role)
    k0, k1, k2, k3 = ReviewQueue(engine, Session(job, Order.UNCERTAIN)).items[:4]
    other = next(label for label in LABELS if label != k0.decision)
    _vote(engine, job, k0, "ana")  # ana and bob split on k0, which lead then settles for bob
    _vote(engine, job, k0, "bob", Verdict.CORRECT, other)
    _vote(engine, job, k1, "ana")  # agreed
    _vote(engine, job, k1, "bob")
    _vote(engine, job, k2, "ana", Verdict.REJECT)  # ana alone: agreement leaves it out
    _vote(engine, job, k3, "bob")
    _vote(engine, job, k3, "bob", Verdict.REJECT)  # bob changed his mind: two verdicts, one undone below
    with engine.begin() as conn:  # bob's first verdict on k3 was yesterday's
        first = conn.execute(text("select min(id) from review where reviewer = 'bob' and file_id = :f"),
                             {"f": k3.file_id}).scalar()
        conn.execute(text("update review set reviewed_at = :t where id = :i"),
                     {"t": datetime.now(timezone.utc) - timedelta(days=1), "i": first})
        last = conn.execute(text("select max(id) from review where reviewer = 'bob'")).scalar()
        conn.execute(text("update review set undone_at = :t where id = :i"), {"t": datetime.now(timezone.utc), "i": last})
    since = datetime.now(timezone.utc) - timedelta(hours=1)
    queue = ReviewQueue(engine, Session(job, Order.UNCERTAIN), overlap=0.0)  # reads who judged what

    before = queue.team(since)
    per_label = {row.label: (row.total, row.judged, row.to_adjudicate, row.remaining) for row in before.labels}
    totals, judged = Counter(i.decision or "" for i in queue.items), Counter(i.decision or "" for i in (k0, k1, k2, k3))
    assert per_label == {label: (totals[label], judged[label], int(label == (k0.decision or "")),
                                 totals[label] - judged[label]) for label in sorted(set(LABELS) | set(totals))}

    lead = ReviewQueue(engine, Session(job, Order.ADJUDICATE))
    lead.give("lead", next(n for n, item in lead.shown() if item.key == k0.key), 0, Verdict.CORRECT, other)
    held = [n for n, _ in queue.handed("ana", 2)]  # the two items nobody judged: k4, k5
    assert len(held) == 2
    progress = queue.team(since)
    people = {p.name: (p.role, p.today, p.total, p.held, p.agreement) for p in progress.people}
    assert people == {
        "ana": (Role.REVIEWER, 3, 3, 2, Score(0.5, 2)),  # k0 against lead's, k1 with bob
        "bob": (Role.REVIEWER, 2, 3, 0, Score(1.0, 2)),  # k3's first is yesterday's; its second was undone
        "lead": (Role.ADMIN, 1, 1, 0, Score(None, 0)),  # their adjudication is the consensus, not a vote
    }
    assert all(row.to_adjudicate == 0 for row in progress.labels)
    assert progress.as_json()["labels"][0]["remaining"] == progress.labels[0].remaining
