"""``soundtag relabel``: a new taxonomy over files whose audio embeddings are stored, written as
an ordinary job (kind ``relabel``) without reading a single recording. Only the text tower runs,
once for the taxonomy's labels (and not at all when they are stored)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine

from db import store
from soundtag import hub
from soundtag.settings import Settings
from soundtag.states import FileState
from soundtag.taxonomy import Taxonomy
from worker.embeddings import results_from_stored, with_stored_model
from worker.labeling import FileResult
from worker.runner import classifier_for, label_embeddings, recorded


@dataclass(frozen=True)
class Plan:
    """What a relabel found before it scores: its job, the files it will score, and those in
    scope without usable stored embeddings (labeled before embeddings were kept, with
    SOUNDTAG_EMBEDDINGS=off, by other weights, or changed since), apart from those that failed."""

    job_id: str
    model: str
    todo: int
    missing: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # of missing: unreadable when last labeled


def relabel(engine: Engine, taxonomy: Taxonomy, settings: Settings, *, job_ids: Sequence[str] = (),
            sources: Sequence[str] = (), on_planned: Callable[[Plan], None] | None = None,
            on_result: Callable[[FileResult], None] | None = None, chunk: int = 2000) -> store.JobInfo:
    """Score every file in scope (the given jobs' files, the files under ``sources``, or every
    labeled file) that has stored embeddings of ``settings.model`` (by default, of the one model
    that made those in scope) against ``taxonomy``, in a new job; embeddings stream from the
    database ``chunk`` files at a time."""
    for job_id in job_ids:
        store.job_info(engine, job_id)  # JobNotFound before anything is recorded
    scope = store.scope_files(engine, job_ids=job_ids, sources=sources)
    settings = with_stored_model(engine, settings, [ref.uri for ref in scope] if job_ids or sources else None)
    hub.check(settings.model)
    classifier = classifier_for(settings.model_ref, settings)
    embedded = store.embedded_uris(engine, settings.model_ref, classifier.revision, [ref.uri for ref in scope])
    job_id = store.create_job(engine, taxonomy, settings, kind="relabel", sources=list(job_ids or sources))
    with recorded(engine, job_id):
        todo = store.add_files(engine, job_id, [ref for ref in scope if ref.uri in embedded], force=True)
        if on_planned:
            missing = [ref.uri for ref in scope if ref.uri not in embedded]
            failed = store.failed_uris(engine, missing)
            on_planned(Plan(job_id, settings.model, len(todo), [uri for uri in missing if uri not in failed],
                            sorted(failed)))
        spec = store.job_spec(engine, job_id)
        vectors = label_embeddings(engine, classifier, spec)
        for files in store.embedding_chunks(engine, settings.model_ref, classifier.revision, job_id=job_id,
                                            status=FileState.QUEUED, chunk=chunk):
            results = results_from_stored(files, vectors, classifier.logit_scale)
            store.save_results(engine, job_id, results, taxonomy.names, logit_scale=classifier.logit_scale)
            for result in results if on_result else ():
                on_result(result)
    store.finish_job_if_done(engine, job_id)
    return store.job_info(engine, job_id)
