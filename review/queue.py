"""One review session's queue: its items, the order they are shown in, the verdicts in force on
them and each item's version, undo, and the lock that makes a verdict's check and write one step;
for a team, which items each person is handed (review.handout), the disputes an admin adjudicates
(``--order adjudicate``) and the team's progress (review.team). The review page's routes
(review.server) are thin over it."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from db.jobs import job_spec
from db.reviewers import reviewers
from db.reviews import (
    Given, ReviewItem, all_verdicts, consensus, record_verdicts, reviewer_votes, undo_verdict, verdict_counts,
)
from review.handout import Handout, overlap_sample
from review.learning import Learner
from review.order import Order, ordered
from review.team import TeamProgress, disputed, team_progress
from review.units import Unit, review_items
from review.validation import validation_items
from soundtag.errors import HeldByAnother, NoSuchItem, NotInTaxonomy, StaleVersion
from soundtag.states import Verdict


@dataclass(frozen=True)
class Session:
    """What one `soundtag review` serves: a job's results as items of one unit, in one order; a
    segment plays with ``context`` seconds of the recording before and after it."""

    job_id: str
    order: Order
    label: str | None = None
    unit: Unit = Unit.FILE
    context: float = 1.0
    files: tuple[int, ...] | None = None  # only these files, in this order (`--search`, `--like`)


class ReviewQueue:
    """The items of ``session``, each known by its id: its place in ``items``, whatever order the
    learner shows them in. A verdict names the version of the item it judges (how many verdicts
    and undos were recorded on it): a stale one is refused, so a second press cannot judge twice.

    With ``overlap`` (a team), each person is handed their own next items of the order, and the
    ``overlap`` share of them goes to two people; a verdict on an item handed to someone else is
    refused. In ``--order adjudicate`` the queue shows the items whose votes disagree and that no
    adjudicator settled, and a verdict there is an adjudication: it settles the item."""

    def __init__(self, engine: Engine, session: Session, learner: Learner | None = None,
                 overlap: float | None = None) -> None:
        self.engine, self.session, self.learner = engine, session, learner
        self.labels = job_spec(engine, session.job_id).taxonomy.names
        items = (validation_items(engine, session.job_id, session.label) if session.order == Order.VALIDATE
                 else review_items(engine, session.job_id, session.unit, session.label))
        if session.files is not None:  # a queue from a search: its hits' files, nearest first
            rank = {file_id: n for n, file_id in enumerate(session.files)}
            items = sorted((item for item in items if item.file_id in rank), key=lambda item: rank[item.file_id])
        elif learner is None:
            items = ordered(items, session.order, seed=session.job_id)
        self.items: list[ReviewItem] = items
        self._number = {id(item): n for n, item in enumerate(items)}
        self._position: dict[tuple, int] = {}
        for n, item in enumerate(items):
            self._position.setdefault(item.key, n)
        self._recordings = {item.file_id: item.uri for item in items}
        self._given = all_verdicts(engine, session.job_id)
        self._versions = [0] * len(items)
        # A team's versions are each person's: the overlap hands one item to two people, and the
        # second's verdict is no second press (issue 28).
        self._own_versions: dict[tuple[str, int], int] = {}
        # Requests run in a thread pool: a verdict's check of the version, its write and the new
        # version are one step, so a double press's second request sees the first one's version.
        self._lock = threading.Lock()
        if self._learns:
            self.shown()  # the learn order is computed once, here, then kept up to date
        self.handout: Handout | None = None
        # Adjudication is not handed out: every admin sees every dispute, and one who voted on it
        # must still be able to settle it (a handout skips what a person judged).
        if overlap is not None and not self.adjudicates:
            self._judges = self._votes()
            self.handout = Handout(frozenset(overlap_sample([item.key for _, item in self.shown()], overlap)))

    def _votes(self) -> dict[tuple, set[str]]:
        return {key: set(people) for key, people in reviewer_votes(self.engine, self.session.job_id).items()}

    @property
    def adjudicates(self) -> bool:
        return self.session.order == Order.ADJUDICATE

    @property
    def _learns(self) -> bool:
        return self.learner is not None and self.session.files is None

    def item(self, n: int) -> ReviewItem:
        if not 0 <= n < len(self.items):
            raise NoSuchItem(f"no item {n} in this review")
        return self.items[n]

    def recording(self, file_id: int) -> str | None:
        """The URI of a file one of the items is of; None for any other id."""
        return self._recordings.get(file_id)

    def shown(self) -> list[tuple[int, ReviewItem]]:
        """Every item with its id, in the order the page shows them (``--order adjudicate``: those
        in dispute now)."""
        if self.adjudicates:
            return [(n, item) for n, item, _ in self.disputes()]
        if not self._learns:
            return list(enumerate(self.items))
        with self._lock:
            reviewed = [file_id for file_id, start, _ in self._given if start is None]
        return [(self._number[id(item)], item) for item in self.learner.order(self.items, reviewed)]

    def disputes(self) -> list[tuple[int, ReviewItem, dict[str, str | None]]]:
        """The items whose votes disagree and that no adjudicator settled yet, read afresh (other
        servers' reviewers vote meanwhile), each with its id and every reviewer's vote (their
        final label: None for a reject)."""
        settled = consensus(self.engine, self.session.job_id)
        open_ = {key for key, one in settled.items() if disputed(one)}
        if not open_:
            return []
        votes = reviewer_votes(self.engine, self.session.job_id)
        return [(n, item, votes.get(item.key, {})) for n, item in enumerate(self.items) if item.key in open_]

    def team(self, since: datetime) -> TeamProgress:
        """The team's progress (review.team), verdicts given from ``since`` counted as today's."""
        job_id = self.session.job_id
        people = {person.name: person.role for person in reviewers(self.engine)}
        with self._lock:
            held = {name: self.handout.held_by(name) for name in people} if self.handout is not None else {}
        return team_progress(self.items, self.labels, consensus(self.engine, job_id),
                             reviewer_votes(self.engine, job_id), verdict_counts(self.engine, job_id, since), held,
                             people)

    def handed(self, reviewer: str, count: int) -> list[tuple[int, ReviewItem]]:
        """A team's queue: the next ``count`` items of the order for ``reviewer``, held for them
        from now (review.handout): those they hold already, then what nobody else holds or judged
        (an item of the overlap sample: what fewer than two did)."""
        shown = self.shown()
        first: dict[tuple, tuple[int, ReviewItem]] = {}
        for n, item in shown:
            first.setdefault(item.key, (n, item))
        with self._lock:
            keys = self.handout.next_for(reviewer, list(first), self._judges, count)
        return [first[key] for key in keys]

    def renew(self, reviewer: str) -> None:
        """``reviewer`` is at work: the items handed to them stay theirs for another lease."""
        if self.handout is not None:
            with self._lock:
                self.handout.renew(reviewer)

    def given(self, n: int) -> dict | None:
        """The verdict in force on item ``n`` (from any reviewer), as the page shows it."""
        found = self._given.get(self.items[n].key)
        return {"verdict": found[0], "label": found[1]} if found else None

    def version(self, n: int, reviewer: str | None = None) -> int:
        """How many verdicts and undos item ``n`` has seen: with a team, ``reviewer``'s own."""
        return self._own_versions.get((reviewer, n), 0) if self._per_person else self._versions[n]

    @property
    def _per_person(self) -> bool:
        return self.handout is not None

    def _bump(self, n: int, reviewer: str) -> None:
        if self._per_person:
            self._own_versions[reviewer, n] = self._own_versions.get((reviewer, n), 0) + 1
        else:
            self._versions[n] += 1

    def progress(self) -> dict:
        """Items reviewed and remaining, overall and per decided label."""
        per_label = {name: {"reviewed": 0, "total": 0} for name in self.labels}
        reviewed = 0
        for item in self.items:
            counts = per_label.setdefault(item.decision or "", {"reviewed": 0, "total": 0})
            counts["total"] += 1
            done = item.key in self._given
            counts["reviewed"] += done
            reviewed += done
        return {"reviewed": reviewed, "remaining": len(self.items) - reviewed, "per_label": per_label}

    def give(self, reviewer: str, n: int, version: int, verdict: Verdict, label: str | None = None) -> None:
        """Record ``reviewer``'s ``verdict`` on item ``n`` as the page saw it at ``version``. Raises
        NoSuchItem, NotInTaxonomy (a correction to a label the taxonomy lacks), StaleVersion, or
        for a team HeldByAnother."""
        item = self.item(n)
        if verdict == Verdict.CORRECT and label not in self.labels:
            raise NotInTaxonomy(f"label {label!r} is not in the taxonomy")
        # accept and reject judge the decision the page showed: the item's, read once at start,
        # rather than file_decisions again per keystroke (seconds on a large PostgreSQL archive).
        judged = label if verdict == Verdict.CORRECT else item.decision
        with self._lock:
            if self.handout is not None and not self.handout.may_judge(reviewer, item.key, self._judges):
                raise HeldByAnother("this item is handed to someone else")
            if version != self.version(n, reviewer):
                raise StaleVersion("this item changed since the page showed it (a second press?)")
            record_verdicts(self.engine, {self.session.job_id: [Given(
                item.file_id, verdict, reviewer, judged, item.start_s, item.end_s, item.decision,
                adjudicated=self.adjudicates)]})
            if self.handout is not None:
                self._judges.setdefault(item.key, set()).add(reviewer)
                self.handout.release(reviewer, [item.key])
            if self.handout is not None and len(self._judges.get(item.key, ())) > 1:
                # Several voted: what is in force is the consensus's.
                self._given = all_verdicts(self.engine, self.session.job_id)
            else:
                self._given[item.key] = (verdict, judged)
            self._bump(n, reviewer)
            in_force = dict(self._given)
        if self.learner:
            self.learner.verdicts_in_force(in_force)

    def undo(self, reviewer: str) -> int | None:
        """Undo ``reviewer``'s last verdict in force; the id of its item (None when there is none
        or it is not one of this queue's)."""
        with self._lock:
            key = undo_verdict(self.engine, self.session.job_id, reviewer)
            self._given = all_verdicts(self.engine, self.session.job_id)
            n = self._position.get(key)
            if n is not None:
                self._bump(n, reviewer)
            if self.handout is not None and key is not None:
                self._judges = self._votes()
                self.handout.next_for(reviewer, [key], self._judges)  # theirs again, to judge anew
            in_force = dict(self._given)
        if self.learner and key is not None:
            self.learner.verdicts_in_force(in_force)
        return n
