"""The Celery application, configured from Settings. Imports no torch: the producer uses it to
send tasks by name."""

from __future__ import annotations

from celery import Celery
from celery.beat import PersistentScheduler

from soundtag.settings import Settings

LABEL_BATCH = "soundtag.label_batch"
SCAN = "soundtag.scan"


def make_app(settings: Settings | None = None) -> Celery:
    settings = settings or Settings()
    app = Celery("soundtag", broker=settings.broker_url, include=["worker.tasks"])
    app.conf.update(
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
        task_default_queue=settings.queue,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
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
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    app.conf.task_routes = {SCAN: {"queue": settings.scan_queue}}
    app.conf.beat_scheduler = "worker.app:ScheduleFileScheduler"
    return app


class ScheduleFileScheduler(PersistentScheduler):
    """Beat's scheduler, with the entries of SOUNDTAG_SCHEDULE_FILE. Only beat reads that file,
    so a typo in it cannot stop the labeling workers."""

    def setup_schedule(self) -> None:
        settings = Settings()
        if not settings.schedule_file:
            raise SystemExit("celery beat: set SOUNDTAG_SCHEDULE_FILE to a schedule file (see producer/schedule.py)")
        from producer.schedule import beat_schedule, load_schedule

        self.app.conf.beat_schedule = beat_schedule(load_schedule(settings.schedule_file), SCAN, settings.scan_queue)
        super().setup_schedule()


app = make_app()
