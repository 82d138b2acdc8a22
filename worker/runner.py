"""Labeling a job's files into the database: ``process``, the step the Celery task runs on each
batch, and ``run``, the whole local job that ``soundtag run`` is.

The model is loaded once per process and kept, keyed by what changes its output.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from db.embeddings import EmbeddingKey, stored_embeddings
from db.files import add_files
from db.jobs import JobInfo, JobSpec, create_job, finish_job_if_done, job_info, job_spec, recorded
from db.results import save_results
from db.schema import engine_for
from db.taxonomies import save_taxonomy
from heads.head import Head
from heads.stored import resolve
from model.classifier import check_device, classifier_for, label_embeddings
from model.results import FileResult
from soundtag import hub
from soundtag.audio import Limits
from soundtag.fileref import FileRef
from soundtag.recording import Rules
from soundtag.settings import Settings
from soundtag.sources.storage import Storage
from soundtag.sources.uris import source_uri
from soundtag.taxonomy import Taxonomy
from vectors.stored import results_from_stored, stored_from, zero_shot
from worker import index_ahead, metrics
from worker.labeling import Labeler

log = logging.getLogger(__name__)

_cache_lock = threading.Lock()
_storages: dict[tuple, Storage] = {}
_head_taxonomies: dict[str, int] = {}


def storage(settings: Settings) -> Storage:
    key = (tuple(settings.allowed_roots), tuple(settings.allowed_buckets))
    with _cache_lock:
        if key not in _storages:
            _storages[key] = Storage(*key)
        return _storages[key]


def labeler_for(spec: JobSpec, settings: Settings) -> Labeler:
    options, classifier = spec.options, classifier_for(spec.model, settings)
    metrics.model_loaded(spec.model, classifier.backend, settings.dtype,
                         str(getattr(classifier.towers, "device", "cpu")))
    return Labeler(
        classifier,
        batch_size=options.get("batch_size") or settings.batch_size,
        window_s=options.get("window_s") or settings.window_s,
        hop_s=options.get("hop_s") or settings.hop_s,
        decode_threads=settings.decode_threads,
        limits=Limits(settings.max_channels, settings.max_rate, settings.max_duration_s),
        rules=Rules.of(options), roots=tuple(source_uri(source) for source in spec.sources),
    )


def process(job_id: str, spec: JobSpec, uris: Sequence[str], settings: Settings, *, holder: str | None = None,
            on_result: Callable[[FileResult], None] | None = None, flush_every_s: float = 2.0,
            stop: Callable[[], bool] | None = None) -> int:
    """Label ``uris``, queued files of the job ``spec`` describes, and store the results. The
    caller read the job and its files once (the task's claim, a local run's recording); with
    ``holder``, the lease holder that claimed them, a result whose file's lease was taken back
    meanwhile is dropped, and logged. Results are written in small transactions as they come,
    so an interruption loses at most the last few seconds of work, and never leaves partial
    rows; once ``stop()`` is true, after the file in hand, the rest stays queued. Returns how
    many files were labeled or failed and stored; raises ModelError when the model cannot load
    (the job's failure, not its files')."""
    engine = engine_for(settings.database_url)
    labeler = labeler_for(spec, settings)
    classifier = labeler.classifier
    labels = spec.taxonomy.names
    vectors = label_embeddings(engine, classifier, spec)
    keep = None if settings.embeddings == "off" else EmbeddingKey(
        classifier.revision, labeler.window_s, labeler.hop_s, settings.embeddings)
    # Files whose windows this model embedded before, at this fingerprint and with these window
    # settings, are scored from the stored vectors: no read, no decode, no audio tower. --force
    # means "from the recordings again" (a decoder fixed, a file suspected).
    stored = {} if spec.options.get("force") else stored_embeddings(
        engine, spec.model, classifier.revision, labeler.window_s, labeler.hop_s, uris)
    from_audio = [uri for uri in uris if uri not in stored]
    reused = results_from_stored(list(stored.values()), zero_shot(vectors, classifier.logit_scale))
    head = resolve(engine, spec.options["head"]) if spec.options.get("head") else None

    def save(results: list[FileResult]) -> int:
        with metrics.saving(results) as dropped:
            dropped.update(save_results(engine, job_id, results, labels, keep, logit_scale=classifier.logit_scale,
                                        labeling=(spec.model, spec.taxonomy_id), holder=holder))
        if dropped:
            log.warning("job %s: %d results dropped: this worker's leases on them were taken back, and their "
                        "new holder labels them", job_id, len(dropped))
        if head is not None:
            # The same windows' embeddings: the stored ones, or those just computed.
            windows = [stored.get(r.uri) or stored_from(r) for r in results if r.ok and r.uri not in dropped]
            save_results(engine, job_id, results_from_stored([w for w in windows if w is not None], head.score),
                         head.labels, logit_scale=None, labeling=(head.model, head_taxonomy(engine, head)))
        return len(dropped)

    buffer: list[FileResult] = []
    flushed = time.monotonic()
    finished = dropped_total = 0
    labeled = labeler.label(from_audio, vectors, storage(settings).open)
    try:
        for result in itertools.chain(reused, labeled):
            buffer.append(result)
            finished += 1
            if on_result:
                on_result(result)
            if stop and stop():
                break
            if time.monotonic() - flushed >= flush_every_s:
                dropped_total += save(buffer)
                buffer, flushed = [], time.monotonic()
    finally:  # however the loop ends, what finished is kept
        labeled.close()
        dropped_total += save(buffer)
    return finished - dropped_total


def head_taxonomy(engine: Engine, head: Head) -> int:
    with _cache_lock:
        if head.model not in _head_taxonomies:
            _head_taxonomies[head.model] = save_taxonomy(engine, head.taxonomy())
        return _head_taxonomies[head.model]


@dataclass(frozen=True)
class Planned:
    """A local run once its files are recorded: how many were found and will be labeled."""

    job_id: str
    found: int
    todo: int

    @property
    def skipped(self) -> int:
        return self.found - self.todo


def run(engine: Engine, refs: Iterable[FileRef], taxonomy: Taxonomy, settings: Settings, *, sources: list[str],
        force: bool = False, retry_failed: bool = False, head: str | None = None,
        on_planned: Callable[[Planned], None] | None = None,
        on_result: Callable[[FileResult], None] | None = None) -> JobInfo:
    """``soundtag run``: check the model and device, record a job of ``refs``, label what is
    pending in this process (with ``head``, 'head:NAME@vN', too), and return the finished job.
    The model is loaded only when a file is pending. How a run that stops early ends is
    recorded (``recorded``)."""
    hub.check(settings.model)
    check_device(settings.device)
    job_id = create_job(engine, taxonomy, settings, kind="run", sources=sources, force=force, head=head)
    with recorded(engine, job_id):
        todo = [uri for _, uri in add_files(engine, job_id, refs, force=force, retry_failed=retry_failed)]
        if on_planned:
            on_planned(Planned(job_id, job_info(engine, job_id).total, len(todo)))
        if todo:
            process(job_id, job_spec(engine, job_id), todo, settings, on_result=on_result)
    if finish_job_if_done(engine, job_id) and todo:
        index_ahead.after_job(engine, job_id, settings,
                              lambda model, revision: index_ahead.build(engine, model, revision, settings))
    return job_info(engine, job_id)
