"""Turning sources into a job: files recorded as queued in SQL, then sent to the workers in
batches through Celery. Never imports torch or transformers."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice

from sqlalchemy import Engine

from db.files import add_files, queued_uris
from db.jobs import create_job, fail_job, finish_job_if_done, job_info, job_spec, reactivate_job
from soundtag import hub
from soundtag.errors import BrokerError
from soundtag.fileref import FileRef
from soundtag.fleet import Sender, check_broker
from soundtag.settings import Settings
from soundtag.states import JobState
from soundtag.taxonomy import Taxonomy

CHUNK = 20_000  # files recorded per transaction; their batches are sent while the next is recorded


@dataclass(frozen=True)
class Enqueued:
    job_id: str
    found: int
    queued: int
    skipped: int


def _listed_ahead(refs: Iterable[FileRef]) -> Iterator[list[FileRef]]:
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


def enqueue(engine: Engine, refs: Iterable[FileRef], taxonomy: Taxonomy, settings: Settings, *,
            sources: list[str], kind: str = "enqueue", force: bool = False, retry_failed: bool = False,
            queue: str | None = None, head: str | None = None) -> Enqueued:
    """Record a job and its files, and send the files to the workers in batches of
    ``files_per_task``. A file's row is committed before its batch is sent, so a worker always
    finds what it is asked to label. Raises ModelError or BrokerError before recording anything
    when the model cannot be found or the broker does not answer; when sending fails midway,
    the job is failed with the reason and BrokerError says to ``requeue`` it. With ``head``
    ('head:NAME@vN'), the workers label the files with that head too, from the embeddings they
    compute."""
    hub.check(settings.model)
    check_broker(settings)
    job_id = create_job(engine, taxonomy, settings, kind=kind, sources=sources, queue=queue, force=force,
                        head=head)
    found = queued = 0
    with _sending(engine, job_id, settings, queue) as sender:
        for chunk in _listed_ahead(refs):
            todo = [uri for _, uri in add_files(engine, job_id, chunk, force=force, retry_failed=retry_failed)]
            sender.send(todo)
            found, queued = found + len(chunk), queued + len(todo)
    finish_job_if_done(engine, job_id)
    return Enqueued(job_id, found, queued, found - queued)


def requeue(engine: Engine, job_id: str, settings: Settings) -> int:
    """Send a job's still-queued files again (after the broker lost its messages, or after the
    cause of a job's failure was fixed: a failed job becomes active again); returns how many.
    Safe to repeat: workers skip files that are no longer queued."""
    info = job_info(engine, job_id)
    check_broker(settings)
    if info.state == JobState.FAILED:
        reactivate_job(engine, job_id)
    uris = queued_uris(engine, job_id)
    with _sending(engine, job_id, settings, job_spec(engine, job_id).options.get("queue")) as sender:
        sender.send(uris)
    return len(uris)


@contextmanager
def _sending(engine: Engine, job_id: str, settings: Settings, queue: str | None) -> Iterator[Sender]:
    """A Sender for the job, closed at the end; if the broker goes away meanwhile, the job is
    failed with the reason (its files stay queued) and BrokerError says to requeue it."""
    sender = Sender(job_id, settings, queue)
    try:
        try:
            yield sender
        finally:
            sender.close()
    except BrokerError as exc:
        fail_job(engine, job_id, f"sending failed: {exc}")
        raise BrokerError(f"job {job_id} failed while sending: {exc}; once it is back, "
                          f"`soundtag requeue {job_id}` sends its queued files") from exc
