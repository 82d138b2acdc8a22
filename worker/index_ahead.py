"""The approximate search index built ahead of the queries when a job ends: past
``Settings.search_approximate_above`` windows, the first ``soundtag search`` after a large job would
otherwise pay the build inline (20 s at 1M windows, 234 s at 10M). A fleet builds it in a worker
task (``soundtag.build_index``, worker.tasks), ``soundtag run`` at its own end; either way into
``Settings.index_dir``, which the searching machines must share to find it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Engine

from db.embeddings import windows_estimate
from db.jobs import job_spec
from model.classifier import classifier_for
from soundtag.errors import describe
from soundtag.settings import Settings
from vectors.window_index import WindowIndex

log = logging.getLogger(__name__)


def after_job(engine: Engine, job_id: str, settings: Settings, build_ahead: Callable[[str, str], object]) -> None:
    """``build_ahead(model, revision)`` (send the task, or build here) when the job this process
    just completed took its model's archive past the threshold (``due``). A failure is logged,
    never raised: the index is a cache of the database, and the job's results are saved already."""
    try:
        found = due(engine, job_id, settings)
        if found:
            build_ahead(*found)
    except Exception as exc:  # noqa: BLE001 - whatever it is, the next search builds the index inline
        log.warning("job %s: search index not built ahead (%s)", job_id, describe(exc))


def due(engine: Engine, job_id: str, settings: Settings) -> tuple[str, str] | None:
    """(model, revision) of the windows a completed job stored, when that model's archive at that
    revision is past ``settings.search_approximate_above`` windows; else None."""
    spec = job_spec(engine, job_id)
    if spec is None or settings.embeddings == "off":
        return None
    # The classifier that labeled the job, kept by this process: its revision is the stored one.
    revision = classifier_for(spec.model, settings).revision
    if windows_estimate(engine, spec.model, revision) <= settings.search_approximate_above:
        return None
    return spec.model, revision


def build(engine: Engine, model: str, revision: str, settings: Settings) -> bool:
    """Bring the search index of ``model`` at ``revision`` up to date and build (or extend) its
    approximate index; whether it changed (False while another process builds it)."""
    index = WindowIndex(engine, model, revision, settings.index_dir, settings.search_approximate_above)
    log.info("building the approximate search index of %s ahead of the queries, in %s", model, index.folder)
    return index.prepare_approximate()
