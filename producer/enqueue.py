"""Turning sources into a job: files recorded as queued in SQL, then sent to the workers in
batches through Celery. Never imports torch or transformers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from db import store
from soundtag.settings import Settings
from soundtag.taxonomy import Taxonomy


@dataclass(frozen=True)
class Enqueued:
    job_id: str
    found: int
    queued: int
    skipped: int


def send_batches(job_id: str, uris: Sequence[str], settings: Settings, queue: str | None = None) -> int:
    """Send ``uris`` as tasks of ``files_per_task`` files; returns how many tasks were sent.
    Safe to repeat: workers skip files that are no longer queued."""
    from worker.app import LABEL_BATCH, make_app

    app = make_app(settings)
    size = settings.files_per_task
    sent = 0
    # One producer (one broker connection) for the whole loop: per-call connection setup would
    # cost more than the publish itself.
    with app.producer_or_acquire() as producer:
        for start in range(0, len(uris), size):
            app.send_task(LABEL_BATCH, args=[job_id, list(uris[start : start + size])],
                          queue=queue or settings.queue, producer=producer)
            sent += 1
    return sent


def record_job(engine: Engine, refs: Sequence[store.FileRef], taxonomy: Taxonomy, settings: Settings, *,
               sources: list[str], kind: str, force: bool = False, queue: str | None = None) -> tuple[str, list[str]]:
    """Record a job and its files; returns the job id and the URIs that need labeling (files
    already labeled by this model and taxonomy at the same fingerprint are skipped)."""
    job_id = store.create_job(
        engine, kind=kind, model=settings.model_ref, taxonomy_id=store.save_taxonomy(engine, taxonomy),
        sources=sources, options={"window_s": settings.window_s, "hop_s": settings.hop_s,
                                  "batch_size": settings.batch_size, "queue": queue or settings.queue})
    todo = [uri for _, uri in store.add_files(engine, job_id, refs, force=force)]
    if not todo:
        store.finish_job(engine, job_id)
    return job_id, todo


def enqueue(engine: Engine, refs: Iterable[store.FileRef], taxonomy: Taxonomy, settings: Settings, *,
            sources: list[str], kind: str = "enqueue", force: bool = False, queue: str | None = None) -> Enqueued:
    """Record a job and its files, then send the files to the workers."""
    refs = list(refs)
    job_id, todo = record_job(engine, refs, taxonomy, settings, sources=sources, kind=kind, force=force, queue=queue)
    send_batches(job_id, todo, settings, queue)
    return Enqueued(job_id, len(refs), len(todo), len(refs) - len(todo))


def requeue(engine: Engine, job_id: str, settings: Settings) -> int:
    """Send a job's still-queued files again (after the broker lost its messages); returns how many."""
    uris = store.queued_uris(engine, job_id)
    send_batches(job_id, uris, settings, store.job_spec(engine, job_id).options.get("queue"))
    return len(uris)
