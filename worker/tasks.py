"""The worker's Celery task. A task carries plain JSON (a job id and file URIs) and runs the
same labeling step as ``soundtag run`` (worker.runner.process)."""

from __future__ import annotations

import logging
import time
from functools import lru_cache

import redis
from celery.exceptions import Retry
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import InterfaceError, OperationalError

from db import leases
from db.files import fail_files
from db.jobs import JobSpec, fail_job, finish_job_if_done, job_spec
from db.schema import engine_for
from soundtag.errors import ModelError, describe
from soundtag.fleet import BUILD_INDEX, LABEL_BATCH, app
from soundtag.settings import Settings, load_settings
from soundtag.states import Failure, FileState, JobState
from worker import heartbeat, index_ahead, metrics
from worker.runner import process

log = logging.getLogger(__name__)

# Worth waiting out: the database, the broker or the storage is briefly unreachable.
TRANSIENT: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, redis.ConnectionError,
                                              redis.TimeoutError, BrokerError, ConnectionError, TimeoutError)


@lru_cache(maxsize=1)
def _settings() -> Settings:
    return load_settings()


@app.task(name=LABEL_BATCH, bind=True)
def label_batch(self, job_id: str, uris: list[str]) -> int:
    """Label a batch of one job's files. Returns how many files were processed.

    The files are leased first (db/leases.py): those a live worker holds or that are finished
    are left alone, so a redelivered message does no work twice. A file whose workers died
    ``task_max_attempts`` times while holding it fails alone. On SIGTERM the batch ends after
    the file in hand and the rest is sent again at once. A model that cannot load fails the job
    once, with its reason; its files stay queued.
    """
    settings = _settings()
    engine = engine_for(settings.database_url)
    me = heartbeat.identity()
    todo: list[str] | None = None  # the files this delivery claimed, once it did
    started = time.perf_counter()
    heartbeat.working.set()
    try:
        spec = _active_spec(engine, job_id, len(uris))
        if spec is None:
            metrics.FILES.labels(FileState.SKIPPED).inc(len(uris))
            return 0
        claimed = leases.claim(engine, job_id, uris, me, settings.lease_s)
        metrics.FILES.labels(FileState.SKIPPED).inc(len(uris) - len(claimed))
        worn = {uri: lost for uri, lost in claimed.items() if lost >= settings.task_max_attempts}
        for uri, lost in worn.items():
            metrics.failed(fail_files(engine, job_id, [uri], f"worker died {lost} times while labeling this file"),
                           Failure.LOST)
        todo = [uri for uri in claimed if uri not in worn]
        done = len(worn) + (process(job_id, spec, todo, settings, holder=me, stop=heartbeat.stopping) if todo else 0)
        if todo and heartbeat.stopping():
            back = leases.give_back(engine, job_id, todo, me, lambda rest: heartbeat.resend(job_id, rest, settings))
            if back:
                log.warning("stopping: %d files of job %s sent again", len(back), job_id)
        if finish_job_if_done(engine, job_id) and todo:
            index_ahead.after_job(engine, job_id, settings, lambda model, revision: app.send_task(
                BUILD_INDEX, args=[model, revision], queue=settings.queue))
    except Retry:
        raise
    except ModelError as exc:
        if fail_job(engine, job_id, str(exc)):
            log.error("job %s failed: %s", job_id, exc)
        done = 0
    except TRANSIENT as exc:
        countdown = min(300, 5 * 2 ** self.request.retries)
        log.warning("job %s: %s; retrying in %d s", job_id, exc.__class__.__name__, countdown)
        raise self.retry(exc=exc, countdown=countdown, max_retries=settings.transient_retries) from None
    except Exception as exc:  # noqa: BLE001 - a bug must not leave files queued forever
        log.exception("job %s: batch failed", job_id)
        metrics.failed(fail_files(engine, job_id, uris if todo is None else todo, describe(exc)), Failure.ERROR)
        finish_job_if_done(engine, job_id)
        done = 0
    finally:
        _release(engine, job_id, todo or [], me)
        heartbeat.working.clear()
        if todo:
            metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
            metrics.observe_cuda_memory()
    return done


def _active_spec(engine, job_id: str, files: int) -> JobSpec | None:
    """The job, read once for the batch, if it exists and is active; else None, logged with why
    ``files`` are dropped."""
    spec = job_spec(engine, job_id)
    if spec is None or spec.state != JobState.ACTIVE:
        log.warning("job %s: %s; dropping %d files", job_id,
                    "no such job" if spec is None else f"job is {spec.state}", files)
        return None
    return spec


@app.task(name=BUILD_INDEX)
def build_index(model: str, revision: str) -> bool:
    """Build (or extend) the approximate search index of ``model`` at ``revision`` off the query
    path (worker.index_ahead); whether it changed."""
    settings = _settings()
    return index_ahead.build(engine_for(settings.database_url), model, revision, settings)


def _release(engine, job_id: str, uris: list[str], me: str) -> None:
    """Free what this batch still holds (a failed job's files, a retried batch's): the message
    that brings them back must find them free, not held by a live worker."""
    if not uris:
        return
    try:
        leases.give_back(engine, job_id, uris, me)
    except TRANSIENT as exc:  # the leases expire and are taken back
        log.warning("job %s: leases not released: %s", job_id, exc.__class__.__name__)
