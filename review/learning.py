"""The learn order of one review session (``soundtag review --order learn``) and, with
``--learn``, its head retrained in a background thread every N verdicts, the queue re-ordered by
the new version: review → train → review where the head is least sure."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import numpy as np
from sqlalchemy import Engine

from db import embeddings, jobs
from db.reviews import ReviewItem
from heads.head import Head
from heads.stored import base_model, resolve
from heads.train import train
from review.order import Learning, Order, ordered
from soundtag.errors import SoundtagError

log = logging.getLogger(__name__)


class Learner:
    """Orders a job's review items by ``review.order.Order.LEARN`` from their stored embeddings
    and the newest version of head ``name`` (when there is one); with ``every``, trains the next
    version on the job's files after each ``every`` verdicts, one training at a time."""

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
        self._since = 0
        self.error: str | None = None

    def _newest(self) -> Head | None:
        try:
            return resolve(self.engine, self.name)
        except SoundtagError:
            return None

    def order(self, items: Sequence[ReviewItem], reviewed: Sequence[int] = ()) -> list[ReviewItem]:
        """``items`` in the learn order under the current head (k-centre from ``reviewed`` before one exists)."""
        with self._lock:
            head = self._head
        probabilities = None
        if head is not None:
            ids = [item.file_id for item in items if item.file_id in self.vectors]
            scored = head.probabilities(np.array([self.vectors[i] for i in ids])) if ids else []
            probabilities = dict(zip(ids, scored))
        known = tuple(self.vectors[i] for i in reviewed if i in self.vectors)
        return ordered(items, Order.LEARN, seed=self.job_id, learning=Learning(self.vectors, known, probabilities))

    def verdict_given(self) -> None:
        """Count a verdict; every ``every``th starts a training unless one is running."""
        if not self.every:
            return
        with self._lock:
            self._since += 1
            if self._since < self.every or (self._thread and self._thread.is_alive()):
                return
            self._since = 0
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
        """Until the training under way, if any, ends (for tests and shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def status(self) -> dict:
        """What the page shows: the current version and its cross-validated numbers per label."""
        with self._lock:
            head, training = self._head, bool(self._thread and self._thread.is_alive())
        return {"head": head.model if head else None, "training": training, "every": self.every,
                "since": self._since, "error": self.error,
                "metrics": {label: {"head": m.get("head", {}), "zero_shot": m.get("zero_shot", {})}
                            for label, m in (head.metrics if head else {}).items()},
                "left_out": head.left_out if head else {}}
