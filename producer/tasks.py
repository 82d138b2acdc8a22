"""The producer's Celery task: a scheduled scan, run on the scan queue."""

from __future__ import annotations

import logging

from db.schema import engine_for
from producer.scan import scan as run_scan
from producer.schedule import load_schedule
from soundtag.fleet import SCAN, app
from soundtag.settings import load_settings

log = logging.getLogger(__name__)


@app.task(name=SCAN)
def scan(name: str) -> dict:
    """Run the scan named ``name`` in the schedule file: enqueue what is new or changed."""
    settings = load_settings()
    schedule = load_schedule(settings.schedule_file)
    entry = schedule.get(name)
    scan_settings = settings.model_copy(update={"model": entry.model}) if entry.model else settings
    result = run_scan(engine_for(settings.database_url), entry.sources, schedule.taxonomy(entry), scan_settings,
                      pattern=entry.pattern, audio_column=entry.audio_column, truth_column=entry.truth_column)
    log.info("%s: %s", name, result.summary())
    return {"job_id": result.job_id, "listed": result.listed, "new": result.new, "changed": result.changed}
