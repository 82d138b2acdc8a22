"""``soundtag relabel``: a new taxonomy, or a trained head, over files whose audio embeddings are
stored, written as an ordinary job (kind ``relabel``) without reading a single recording. Only
the text tower runs, once for the taxonomy's labels (and not at all when they are stored, or
for a head)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine

from db.embeddings import embedded_uris, embedding_chunks
from db.files import add_files, failed_uris, scope_files
from db.jobs import JobInfo, create_job, finish_job_if_done, job_info, job_spec, recorded
from db.results import save_results
from heads.head import Head
from model.classifier import classifier_for, label_embeddings
from model.results import FileResult
from soundtag import hub
from soundtag.errors import ReadError
from soundtag.settings import Settings
from soundtag.sources.storage import Storage
from soundtag.states import FileState
from soundtag.taxonomy import Taxonomy
from vectors.stored import results_from_stored, with_stored_model, zero_shot


@dataclass(frozen=True)
class Plan:
    """What a relabel found before it scores: its job, the files it will score, and those in
    scope without usable stored embeddings (labeled before embeddings were kept, with
    SOUNDTAG_EMBEDDINGS=off, by other weights, or changed since) apart from those that failed
    (unreadable when last labeled), and why each file the
    allow-lists refuse was left out."""

    job_id: str
    model: str
    todo: int
    missing: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def relabel(engine: Engine, taxonomy: Taxonomy | None, settings: Settings, *, head: Head | None = None,
            job_ids: Sequence[str] = (), sources: Sequence[str] = (), on_planned: Callable[[Plan], None] | None = None,
            on_result: Callable[[FileResult], None] | None = None, chunk: int = 2000) -> JobInfo:
    """Score every file in scope (the given jobs' files, the files under ``sources``, or every
    labeled file) that has stored embeddings, in a new job: against ``taxonomy`` with
    ``settings.model`` (its text tower only), or with ``head`` (no model at all: its labeling is
    model 'head:NAME@vN', its taxonomy the head's labels). Embeddings stream from the database
    ``chunk`` files at a time."""
    for job_id in job_ids:
        job_info(engine, job_id)  # JobNotFound before anything is recorded
    scope, refused = _allowed(scope_files(engine, job_ids=job_ids, sources=sources), settings)
    if head is None:
        settings = with_stored_model(engine, settings, [ref.uri for ref in scope] if job_ids or sources else None)
        hub.check(settings.model)
        classifier = classifier_for(settings.model_ref, settings)
        model, revision, logit_scale = settings.model_ref, classifier.revision, classifier.logit_scale
    else:
        model, revision, logit_scale, taxonomy = head.base_model, head.base_revision, None, head.taxonomy()
    embedded = embedded_uris(engine, model, revision, [ref.uri for ref in scope])
    job_id = create_job(engine, taxonomy, settings, kind="relabel", sources=list(job_ids or sources),
                        model=head.model if head else None)
    with recorded(engine, job_id):
        todo = add_files(engine, job_id, [ref for ref in scope if ref.uri in embedded], force=True)
        if on_planned:
            missing = [ref.uri for ref in scope if ref.uri not in embedded]
            failed = failed_uris(engine, missing)
            on_planned(Plan(job_id, model, len(todo), [uri for uri in missing if uri not in failed], sorted(failed),
                            refused))
        scorer = head.score if head else zero_shot(
            label_embeddings(engine, classifier, job_spec(engine, job_id)), logit_scale)
        for files in embedding_chunks(engine, model, revision, job_id=job_id, status=FileState.QUEUED, chunk=chunk):
            results = results_from_stored(files, scorer)
            save_results(engine, job_id, results, taxonomy.names, logit_scale=logit_scale)
            for result in results if on_result else ():
                on_result(result)
    finish_job_if_done(engine, job_id)
    return job_info(engine, job_id)


def _allowed(scope: list, settings: Settings) -> tuple[list, list[str]]:
    """The files of ``scope`` the allow-lists let through (labels are what a reader of the
    recording would learn), and why each other one may not be read. Without allow-lists, all:
    a relabel needs no recording, even one gone since."""
    storage, allowed, refused = Storage(settings.allowed_roots, settings.allowed_buckets), [], []
    if not storage.restricted:
        return scope, []
    for ref in scope:
        try:
            storage.check(ref.uri)
            allowed.append(ref)
        except ReadError as exc:
            refused.append(str(exc))
    return allowed, refused
