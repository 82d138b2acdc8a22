"""Celery beat's scheduler for soundtag: the scans of the schedule file, sent to the scan queue."""

from __future__ import annotations

from celery.beat import PersistentScheduler

from producer.schedule import beat_schedule, load_schedule
from soundtag.fleet import SCAN
from soundtag.settings import load_settings


class ScheduleFileScheduler(PersistentScheduler):
    """Beat's scheduler, with the entries of SOUNDTAG_SCHEDULE_FILE. Only beat reads that file,
    so a typo in it cannot stop the labeling workers."""

    def setup_schedule(self) -> None:
        settings = load_settings()
        if not settings.schedule_file:
            raise SystemExit("celery beat: set SOUNDTAG_SCHEDULE_FILE to a schedule file (see producer/schedule.py)")
        self.app.conf.beat_schedule = beat_schedule(load_schedule(settings.schedule_file), SCAN, settings.scan_queue)
        super().setup_schedule()
