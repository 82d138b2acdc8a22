"""The learn order of one review session (``soundtag review --order learn``) and, with
``--learn``, its head retrained in a background thread every N changed verdicts, the queue re-ordered by
the new version: review → train → review where the head is least sure."""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Hashable, Mapping, Sequence

import numpy as np
from sqlalchemy import Engine

from db import embeddings, jobs
from db.reviews import ReviewItem, all_verdicts
from heads.head import Head
from heads.stored import base_model, resolve
from heads.train import train
from review.order import DIVERSE, Learning, Order, Spread, learn_split, ordered, spread_first
from soundtag.errors import SoundtagError

log = logging.getLogger(__name__)


class _Spreading:
    """The learn order before a head exists, of one list of items: k-centre's picks from the
    reviewed files' embeddings (``review.order.Spread``), brought up to date in a thread when the
    reviewed files change, so that a request reads the latest order and never waits for one."""

    def __init__(self, items: Sequence[ReviewItem], vectors: dict[int, np.ndarray], reviewed: Collection[int],
                 seed: str) -> None:
        self.items, self.vectors, self.seed = items, vectors, seed
        self.placed, self.rest = learn_split(items, vectors)
        self.uncertain = ordered(self.placed, Order.UNCERTAIN)
        self.rows = {}
        for row, item in enumerate(self.placed):
            self.rows.setdefault(item.file_id, row)
        self.matrix = np.array([vectors[item.file_id] for item in self.placed])
        self._lock = threading.Lock()
        self._wanted: set[int] = set(reviewed)
        self._thread: threading.Thread | None = None
        self._known: set[int] = set()
        self._spread: Spread | None = None
        self.current: list[ReviewItem] = []
        self._bring_in(set(reviewed))

    def order(self, reviewed: Collection[int]) -> list[ReviewItem]:
        """The order from the reviewed files last brought in; ``reviewed`` is brought in meanwhile."""
        self.want(reviewed)
        with self._lock:
            return self.current

    def want(self, reviewed: Collection[int]) -> None:
        """Bring ``reviewed`` in, in the background."""
        with self._lock:
            self._wanted = set(reviewed)
            if self._wanted != self._known and self._thread is None:
                self._thread = threading.Thread(target=self._follow, name="learn-order", daemon=True)
                self._thread.start()

    def _follow(self) -> None:
        while True:
            with self._lock:
                wanted = set(self._wanted)
                if wanted == self._known:
                    self._thread = None
                    return
            self._bring_in(wanted)

    def _bring_in(self, wanted: set[int]) -> None:
        if self._spread is None or self._known - wanted:  # an undo: the picks are chosen afresh
            known = [self.vectors[i] for i in sorted(wanted) if i in self.vectors]
            self._spread = Spread(self.matrix, DIVERSE, self.seed, np.array(known) if known else None)
        else:
            for file_id in sorted(wanted - self._known):
                if file_id in self.vectors:
                    self._spread.add(self.vectors[file_id], self.rows.get(file_id))
        current = spread_first(self.placed, self._spread.picks, self.uncertain) + self.rest
        with self._lock:
            self._known, self.current = wanted, current

    def wait(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)


class Learner:
    """Orders a job's review items by ``review.order.Order.LEARN`` from their stored embeddings
    and the newest version of head ``name`` (when there is one); with ``every``, trains the next
    version on the job's files once ``every`` verdicts in force changed, one training at a time."""

    def __init__(self, engine: Engine, job_id: str, name: str, every: int | None = None) -> None:
        self.engine, self.job_id, self.name, self.every = engine, job_id, name, every
        self.model = base_model(engine, jobs.job_spec(engine, job_id).model)
        self.vectors: dict[int, np.ndarray] = {}
        for chunk in embeddings.embedding_chunks(engine, self.model, job_id=job_id):
            for found in chunk:
                if isinstance(found, embeddings.Unreadable):  # a damaged row: the item goes last
                    continue
                mean = found.vectors.mean(axis=0)
                self.vectors[found.file_id] = mean / (np.linalg.norm(mean) or 1.0)
        self._lock = threading.Lock()
        self._head: Head | None = self._newest()
        self._thread: threading.Thread | None = None
        self._since = 0  # items whose verdict differs from those the last training started from
        self._trained_from: dict = dict(all_verdicts(engine, job_id))
        self.error: str | None = None
        self._spreading: _Spreading | None = None
        self._by_head: tuple[Head, Sequence[ReviewItem], list[ReviewItem]] | None = None

    def _newest(self) -> Head | None:
        try:
            return resolve(self.engine, self.name)
        except SoundtagError:
            return None

    def order(self, items: Sequence[ReviewItem], reviewed: Collection[int] = ()) -> list[ReviewItem]:
        """``items`` in the learn order: under the current head, computed once per version; before
        one exists, k-centre from the ``reviewed`` files, computed on the first call and then
        kept up to date in the background (a call may see the order of a verdict or two ago)."""
        with self._lock:
            head = self._head
        if head is not None:
            if self._by_head is None or self._by_head[0] is not head or self._by_head[1] is not items:
                ids = [item.file_id for item in items if item.file_id in self.vectors]
                scored = head.probabilities(np.array([self.vectors[i] for i in ids])) if ids else []
                learning = Learning(self.vectors, probabilities=dict(zip(ids, scored)))
                self._by_head = head, items, ordered(items, Order.LEARN, seed=self.job_id, learning=learning)
            return self._by_head[2]
        if self._spreading is None or self._spreading.items is not items:
            self._spreading = _Spreading(items, self.vectors, reviewed, self.job_id)
        return self._spreading.order(reviewed)

    def verdicts_in_force(self, in_force: Mapping[Hashable, tuple]) -> None:
        """The job's verdicts in force now (item key → verdict and label). With ``every``, a
        training starts once ``every`` items' verdicts differ from those the last training started
        from (new, changed or undone: a verdict toggled back and forth is one), unless one is running.
        The order before a head exists is brought up to date with them in the background."""
        if self._spreading is not None:
            self._spreading.want([file_id for file_id, start, _ in in_force if start is None])
        if not self.every:
            return
        with self._lock:
            self._since = sum(self._trained_from.get(key) != given for key, given in in_force.items()) + sum(
                key not in in_force for key in self._trained_from)
            if self._since < self.every or (self._thread and self._thread.is_alive()):
                return
            self._trained_from, self._since = dict(in_force), 0
            self._thread = threading.Thread(target=self._train, name=f"train-{self.name}", daemon=True)
            self._thread.start()

    def _train(self) -> None:
        try:
            trained = train(self.engine, self.name, self.model, job_ids=[self.job_id])
        except SoundtagError as exc:  # too few verdicts yet: said on the page, tried again later
            self.error = str(exc)
            return
        except Exception:  # noqa: BLE001 - the page keeps working with the head it has
            log.exception("training %s failed", self.name)
            self.error = f"training {self.name} failed; see the server's log"
            return
        with self._lock:
            self._head, self.error = trained.head, None

    def wait(self, timeout: float | None = None) -> None:
        """Until the training and the update of the order under way, if any, end (for tests and shutdown)."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self._spreading is not None:
            self._spreading.wait(timeout)

    def status(self) -> dict:
        """What the page shows: the current version and its cross-validated numbers per label."""
        with self._lock:
            head, training = self._head, bool(self._thread and self._thread.is_alive())
        return {"head": head.model if head else None, "training": training, "every": self.every,
                "since": self._since, "error": self.error,
                "metrics": {label: {"head": m.get("head", {}), "zero_shot": m.get("zero_shot", {})}
                            for label, m in (head.metrics if head else {}).items()},
                "left_out": head.left_out if head else {}}
