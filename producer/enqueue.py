"""Turning sources into a job: files recorded as queued in SQL, then sent to the workers in
batches through Celery. Never imports torch or transformers."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice

from sqlalchemy import Engine

from db import store
from soundtag.settings import Settings
from soundtag.taxonomy import Taxonomy

CHUNK = 20_000  # files recorded per transaction; their batches are sent while the next is recorded


@dataclass(frozen=True)
class Enqueued:
    job_id: str
    found: int
    queued: int
    skipped: int


class _Sender:
    """Publishes batches of one job on a background thread, over one broker connection."""

    def __init__(self, job_id: str, settings: Settings, queue: str | None):
        from worker.app import make_app

        self.app, self.job_id, self.settings = make_app(settings), job_id, settings
        self.queue = queue or settings.queue
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="send")
        self._sent: list = []

    def send(self, uris: Sequence[str]) -> None:
        self._sent.append(self._thread.submit(self._publish, list(uris)))

    def _publish(self, uris: list[str]) -> None:
        from worker.app import LABEL_BATCH

        size = self.settings.files_per_task
        # One producer for the whole loop: per-call connection setup would cost more than the publish.
        with self.app.producer_or_acquire() as producer:
            for start in range(0, len(uris), size):
                self.app.send_task(LABEL_BATCH, args=[self.job_id, uris[start : start + size]],
                                   queue=self.queue, producer=producer)

    def close(self) -> None:
        """Wait for every batch to be published; raises what publishing raised."""
        self._thread.shutdown(wait=True)
        for future in self._sent:
            future.result()


def _listed_ahead(refs: Iterable[store.FileRef]) -> Iterator[list[store.FileRef]]:
    """``refs`` in chunks of CHUNK, listed one chunk ahead on a thread: the listing (Python) then
    runs while the database writes the previous chunk. The listing's errors are raised here."""
    chunks: queue.Queue = queue.Queue(maxsize=1)
    refs = iter(refs)

    def produce() -> None:
        try:
            while chunk := list(islice(refs, CHUNK)):
                chunks.put(chunk)
            chunks.put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, who raises it
            chunks.put(exc)

    threading.Thread(target=produce, name="list", daemon=True).start()
    while (item := chunks.get()) is not None:
        if isinstance(item, BaseException):
            raise item
        yield item


def _create_job(engine: Engine, taxonomy: Taxonomy, settings: Settings, *, sources: list[str], kind: str,
                queue: str | None) -> str:
    return store.create_job(
        engine, kind=kind, model=settings.model_ref, taxonomy_id=store.save_taxonomy(engine, taxonomy),
        sources=sources, options={"window_s": settings.window_s, "hop_s": settings.hop_s,
                                  "batch_size": settings.batch_size, "queue": queue or settings.queue})


def record_job(engine: Engine, refs: Sequence[store.FileRef], taxonomy: Taxonomy, settings: Settings, *,
               sources: list[str], kind: str, force: bool = False) -> tuple[str, list[str]]:
    """Record a job and its files; returns the job id and the URIs that need labeling (files
    already labeled by this model and taxonomy at the same fingerprint are skipped)."""
    job_id = _create_job(engine, taxonomy, settings, sources=sources, kind=kind, queue=None)
    todo = [uri for _, uri in store.add_files(engine, job_id, refs, force=force)]
    if not todo:
        store.finish_job(engine, job_id)
    return job_id, todo


def enqueue(engine: Engine, refs: Iterable[store.FileRef], taxonomy: Taxonomy, settings: Settings, *,
            sources: list[str], kind: str = "enqueue", force: bool = False, queue: str | None = None) -> Enqueued:
    """Record a job and its files, and send the files to the workers in batches of
    ``files_per_task``. A file's row is committed before its batch is sent, so a worker always
    finds what it is asked to label."""
    job_id = _create_job(engine, taxonomy, settings, sources=sources, kind=kind, queue=queue)
    sender = _Sender(job_id, settings, queue)
    found = queued = 0
    try:
        for chunk in _listed_ahead(refs):
            todo = [uri for _, uri in store.add_files(engine, job_id, chunk, force=force)]
            sender.send(todo)
            found, queued = found + len(chunk), queued + len(todo)
    finally:
        sender.close()
    if not queued:
        store.finish_job(engine, job_id)
    return Enqueued(job_id, found, queued, found - queued)


def requeue(engine: Engine, job_id: str, settings: Settings) -> int:
    """Send a job's still-queued files again (after the broker lost its messages); returns how
    many. Safe to repeat: workers skip files that are no longer queued."""
    uris = store.queued_uris(engine, job_id)
    sender = _Sender(job_id, settings, store.job_spec(engine, job_id).options.get("queue"))
    sender.send(uris)
    sender.close()
    return len(uris)
