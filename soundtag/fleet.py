"""Where the producer and the workers meet: the Celery app, the task names, and sending a
job's files as batches. Neither side imports the other; both import this (no torch here).

``celery -A soundtag.fleet worker`` runs the tasks of both sides (``worker.tasks`` labels,
``producer.tasks`` scans, each on its own queue), ``celery -A soundtag.fleet beat`` the schedule.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from celery import Celery
from kombu.exceptions import OperationalError as KombuOperationalError

from soundtag.errors import BrokerError, ConfigError, first_line
from soundtag.redaction import masked
from soundtag.settings import Settings, load_settings

LABEL_BATCH = "soundtag.label_batch"
SCAN = "soundtag.scan"
# Builds a model's approximate search index ahead of the queries, when a job's end takes the
# archive past SOUNDTAG_SEARCH_APPROXIMATE_ABOVE windows (worker.tasks).
BUILD_INDEX = "soundtag.build_index"


class _App(Celery):
    """The Celery app. What comes from Settings (the broker above all) is read when the app is
    first configured, at its first use (a worker starting, a message sent), never at import:
    whoever imports this module first cannot fix the broker for everyone after."""

    def __init__(self, settings: Settings | None = None) -> None:
        # Task modules by name: importing them here would tie the producer to torch and back.
        super().__init__("soundtag", include=["worker.tasks", "producer.tasks"])
        self._settings = settings
        self.conf.update(
            # JSON only: a pickle message from anyone who can reach Redis would be code execution.
            task_serializer="json",
            accept_content=["json"],
            # Results live in SQL; a result backend would only duplicate them.
            task_ignore_result=True,
            # A task is acknowledged after it finished, and a worker that dies mid-batch (SIGKILL,
            # OOM, lost GPU) gives its batch back: results are idempotent upserts, so redoing is safe.
            task_acks_late=True,
            task_reject_on_worker_lost=True,
            # One reserved batch per process: a batch waiting behind a long one in a worker's buffer
            # is invisible to idle workers.
            worker_prefetch_multiplier=1,
            broker_connection_retry_on_startup=True,
            broker_connection_max_retries=None,
            worker_hijack_root_logger=False,
            worker_cancel_long_running_tasks_on_connection_loss=False,
            # Events let `celery flower` (the compose `flower` service) show tasks as they run.
            worker_send_task_events=True,
            task_send_sent_event=True,
            beat_scheduler="producer.beat:ScheduleFileScheduler",
        )

    def on_configure(self) -> None:
        try:
            settings = self._settings or load_settings()
        except ConfigError as exc:  # a worker or beat that celery started has no soundtag error boundary
            raise SystemExit(f"error: {exc}") from None
        # Key by key: conf.update() would flush the routes, which reads the configuration being made.
        for key, value in dict(
            broker_url=settings.broker_url,
            task_default_queue=settings.queue,
            task_routes={SCAN: {"queue": settings.scan_queue}},
            broker_transport_options={
                # Unacknowledged batches come back after this long; it must exceed the longest batch
                # (a batch of long recordings on a slow CPU) or a live worker's batch is redone.
                "visibility_timeout": settings.visibility_timeout_s,
                # Sweep for abandoned batches every 10 s (kombu's default throttle makes it ~100 s).
                "unacked_restore_interval": 10,
                "unacked_restore_throttle": 1,
                "socket_timeout": 30,
                "socket_connect_timeout": 10,
                "health_check_interval": 25,
            },
        ).items():
            setattr(self.conf, key, value)


def queue_keys(queue: str) -> list[str]:
    """The Redis lists Celery's Redis transport keeps ``queue`` in, one per priority step: the
    first, named as the queue, holds every message sent without a priority (all of soundtag's)."""
    from kombu.transport.redis import Channel

    return [queue if step == 0 else f"{queue}{Channel.sep}{step}" for step in Channel.priority_steps]


def make_app(settings: Settings | None = None) -> Celery:
    """An app for ``settings``, or for the Settings of the environment when it is first used."""
    return _App(settings)


class Sender:
    """Publishes batches of one job's files on a background thread, over one broker connection,
    so listing and recording the next files go on meanwhile."""

    def __init__(self, job_id: str, settings: Settings, queue: str | None = None):
        self.app, self.job_id, self.settings = make_app(settings), job_id, settings
        self.queue = queue or settings.queue
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="send")
        self._sent: list = []

    def send(self, uris: Sequence[str]) -> None:
        self._sent.append(self._thread.submit(self._publish, list(uris)))

    def _publish(self, uris: list[str]) -> None:
        size = self.settings.files_per_task
        # One producer for the whole loop: per-call connection setup would cost more than the publish.
        with self.app.producer_or_acquire() as producer:
            for start in range(0, len(uris), size):
                self.app.send_task(LABEL_BATCH, args=[self.job_id, uris[start : start + size]],
                                   queue=self.queue, producer=producer)

    def close(self) -> None:
        """Wait for every batch to be published; raises BrokerError when the broker could not be
        reached, else what publishing raised."""
        self._thread.shutdown(wait=True)
        try:
            for future in self._sent:
                future.result()
        except BROKER_DOWN as exc:
            raise _unreachable(self.settings, exc) from exc


# What kombu raises when the broker cannot be reached (after its own retries).
BROKER_DOWN = (KombuOperationalError, ConnectionError)


def _unreachable(settings: Settings, exc: BaseException) -> BrokerError:
    return BrokerError(f"broker {masked(settings.broker_url)} unreachable ({first_line(exc)}): start it, "
                       "or point SOUNDTAG_BROKER_URL at it")


def check_broker(settings: Settings) -> None:
    """Raise BrokerError unless the broker answers, within a few seconds."""
    with make_app(settings).connection_for_write() as conn:
        try:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=5)
        except BROKER_DOWN as exc:
            raise _unreachable(settings, exc) from exc


app = make_app()
