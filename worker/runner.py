"""Labeling a job's files into the database: the step ``soundtag run`` and the Celery task share.

The model is loaded once per process and kept, keyed by what changes its output.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from db import store
from db.schema import engine_for
from soundtag.settings import Settings
from worker.audio import Limits
from worker.clap import Classifier
from worker.labeling import FileResult, Labeler
from worker.storage import Storage

_cache_lock = threading.Lock()
_classifiers: dict[tuple[str, str, str], Classifier] = {}
_storage: Storage | None = None


def classifier_for(model: str, settings: Settings) -> Classifier:
    key = (model, settings.device, settings.dtype)
    with _cache_lock:
        if key not in _classifiers:
            _classifiers[key] = Classifier(model, settings.device, settings.dtype)
        return _classifiers[key]


def storage() -> Storage:
    global _storage
    with _cache_lock:
        if _storage is None:
            _storage = Storage()
        return _storage


def labeler_for(spec: store.JobSpec, settings: Settings) -> Labeler:
    options = spec.options
    return Labeler(
        classifier_for(spec.model, settings),
        batch_size=options.get("batch_size") or settings.batch_size,
        window_s=options.get("window_s") or settings.window_s,
        hop_s=options.get("hop_s") or settings.hop_s,
        decode_threads=settings.decode_threads,
        limits=Limits(settings.max_channels, settings.max_rate, settings.max_duration_s),
    )


def process(job_id: str, uris: Sequence[str], settings: Settings,
            on_result: Callable[[FileResult], None] | None = None, flush_every_s: float = 2.0) -> int:
    """Label those of ``uris`` the job still wants and store the results. Results are written
    in small transactions as they come, so an interruption loses at most the last few seconds
    of work, and never leaves partial rows. Returns how many files were labeled or failed."""
    engine = engine_for(settings.database_url)
    spec = store.job_spec(engine, job_id)
    wanted = store.pending_uris(engine, job_id, uris)
    if not wanted:
        return 0
    labeler = labeler_for(spec, settings)
    labels = spec.taxonomy.names
    buffer: list[FileResult] = []
    flushed = time.monotonic()
    for result in labeler.label(wanted, spec.taxonomy, storage().open):
        buffer.append(result)
        if on_result:
            on_result(result)
        if time.monotonic() - flushed >= flush_every_s:
            store.save_results(engine, job_id, buffer, labels)
            buffer, flushed = [], time.monotonic()
    store.save_results(engine, job_id, buffer, labels)
    return len(wanted)
