"""The worker's Celery task. A task carries plain JSON (a job id and file URIs) and runs the
same labeling step as ``soundtag run`` (worker.runner.process)."""

from __future__ import annotations

import logging
from functools import lru_cache

import redis
from celery.exceptions import Retry
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import InterfaceError, OperationalError

from db.files import fail_files, pending_uris
from db.jobs import fail_job, finish_job_if_done
from db.schema import engine_for
from soundtag.errors import ModelError, describe
from soundtag.fleet import LABEL_BATCH, app
from soundtag.settings import Settings
from worker.runner import process

log = logging.getLogger(__name__)

# Worth waiting out: the database, the broker or the storage is briefly unreachable.
TRANSIENT: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, redis.ConnectionError,
                                              redis.TimeoutError, BrokerError, ConnectionError, TimeoutError)


@lru_cache(maxsize=1)
def _settings() -> Settings:
    return Settings()


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    return redis.Redis.from_url(_settings().broker_url, socket_timeout=30)


def _begin_attempt(task_id: str) -> int:
    """Count the starts of a task that did not end cleanly: more than one means a worker died
    while holding it (the broker redelivers, Celery itself does not count)."""
    key = f"soundtag:attempts:{task_id}"
    pipe = _redis().pipeline()
    pipe.incr(key).expire(key, 7 * 24 * 3600)
    return int(pipe.execute()[0])


def _end_attempt(task_id: str) -> None:
    _redis().delete(f"soundtag:attempts:{task_id}")


@app.task(name=LABEL_BATCH, bind=True)
def label_batch(self, job_id: str, uris: list[str]) -> int:
    """Label a batch of one job's files. Returns how many files were processed.

    A batch that killed its worker is split into one task per remaining file, so a file that
    crashes the decoder fails alone after ``task_max_attempts`` tries and the others go on. A
    model that cannot load fails the job once, with its reason; its files stay queued.
    """
    settings = _settings()
    engine = engine_for(settings.database_url)
    try:
        attempt = _begin_attempt(self.request.id)
        pending = pending_uris(engine, job_id, uris) if attempt > 1 else uris
        if attempt > 1 and len(pending) > 1:
            log.warning("batch %s of job %s came back after a worker died: splitting %d files",
                        self.request.id, job_id, len(pending))
            queue = (self.request.delivery_info or {}).get("routing_key") or settings.queue
            for uri in pending:
                label_batch.apply_async((job_id, [uri]), queue=queue)
            done = 0
        elif attempt > settings.task_max_attempts:
            fail_files(engine, job_id, pending, f"worker died {attempt - 1} times while labeling this file")
            done = len(pending)
        else:
            done = process(job_id, uris, settings)
        finish_job_if_done(engine, job_id)
    except Retry:
        raise
    except ModelError as exc:
        if fail_job(engine, job_id, str(exc)):
            log.error("job %s failed: %s", job_id, exc)
        done = 0
    except TRANSIENT as exc:
        countdown = min(300, 5 * 2 ** self.request.retries)
        log.warning("job %s: %s; retrying in %d s", job_id, exc.__class__.__name__, countdown)
        try:
            _end_attempt(self.request.id)
        except redis.RedisError:
            pass
        raise self.retry(exc=exc, countdown=countdown, max_retries=settings.transient_retries) from None
    except Exception as exc:  # noqa: BLE001 - a bug must not leave files queued forever
        log.exception("job %s: batch failed", job_id)
        fail_files(engine, job_id, uris, describe(exc))
        finish_job_if_done(engine, job_id)
        done = 0
    _end_attempt(self.request.id)
    return done
