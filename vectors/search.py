"""``soundtag search``: stored windows ranked by cosine to a text's embedding or to one window of
a file, through the kept index of ``vectors.window_index`` that follows the database before each
query: exact (every stored vector of the model compared) up to ``Settings.search_approximate_above``
windows, approximate past it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from sqlalchemy import Engine

from db.embeddings import stored_embeddings_of
from db.files import job_file_ids
from db.jobs import job_spec
from heads.stored import base_model
from model.classifier import classifier_for
from soundtag import hub
from soundtag.errors import DamagedData, ReadError, SoundtagError
from soundtag.settings import Settings
from soundtag.sources.storage import Storage
from vectors.stored import with_stored_model
from vectors.window_index import WindowIndex


@dataclass(frozen=True)
class Hit:
    uri: str
    start_s: float
    end_s: float
    similarity: float

    def as_dict(self) -> dict:
        return asdict(self)


def rank(engine: Engine, settings: Settings, revision: str, query: np.ndarray, limit: int,
         on_damaged: Callable[[str], None] | None = None, approximate: bool | None = None) -> list[Hit]:
    """The ``limit`` stored windows of ``settings.model`` at ``revision`` most similar to
    ``query`` (a unit vector), best first; ``approximate`` as in ``WindowIndex.nearest``. Files
    whose stored rows are damaged are left out, each passed to ``on_damaged`` (a line naming it)."""
    index = WindowIndex(engine, settings.model_ref, revision, settings.index_dir, settings.search_approximate_above)
    hits = [Hit(found.stored.uri, float(found.stored.starts[found.window]), float(found.stored.ends[found.window]),
                found.similarity) for found in index.nearest(query, limit, approximate)]
    for reason in index.damaged if on_damaged else ():
        on_damaged(reason)
    return hits


def search_text(engine: Engine, text: str, settings: Settings, limit: int = 10,
                on_damaged: Callable[[str], None] | None = None, approximate: bool | None = None) -> list[Hit]:
    """Stored windows of ``settings.model`` (by default, the model of the stored embeddings)
    ranked by cosine to the text's embedding."""
    settings = with_stored_model(engine, settings)
    hub.check(settings.model)
    classifier = classifier_for(settings.model_ref, settings)
    return rank(engine, settings, classifier.revision, classifier.embed_text(text), limit, on_damaged, approximate)


def search_like(engine: Engine, uri: str, settings: Settings, at_s: float = 0.0, limit: int = 10,
                on_damaged: Callable[[str], None] | None = None, approximate: bool | None = None) -> list[Hit]:
    """Stored windows of ``settings.model`` (by default, the model of the file's stored
    embeddings) ranked by cosine to the window of ``uri`` holding second ``at_s``. Needs no
    model: only stored vectors. Raises SoundtagError when no window holds that second."""
    settings = with_stored_model(engine, settings, [uri])
    try:
        storage = Storage(settings.allowed_roots, settings.allowed_buckets)
        if storage.restricted:  # without allow-lists, the stored vectors of a recording gone since serve
            storage.check(uri)
        found = stored_embeddings_of(engine, settings.model_ref, uri)
    except ReadError as exc:  # the allow-lists refuse it
        raise SoundtagError(f"search --like {exc}") from None
    except DamagedData as exc:
        raise SoundtagError(f"{exc}; run `soundtag run {uri} --force` to embed it again") from None
    if found is None:
        raise SoundtagError(f"{uri}: no stored embeddings by model {settings.model_ref}; "
                            f"run `soundtag run {uri} --force` to make them")
    stored, revision = found
    inside = np.flatnonzero((stored.starts <= at_s) & (at_s < stored.ends))
    if not len(inside):
        raise SoundtagError(f"--at {at_s:g}: no window of {uri} holds that second; its windows cover "
                            f"{stored.starts.min():g} to {stored.ends.max():g} s")
    return rank(engine, settings, revision, stored.vectors[int(inside[0])], limit, on_damaged, approximate)


def files_near(engine: Engine, job_id: str, settings: Settings, text: str | None, like: str | None,
               at_s: float = 0.0, limit: int = 100) -> tuple[int, ...]:
    """The ids of the job's files holding the ``limit`` windows nearest ``text`` (or the window
    of ``like`` at ``at_s``), nearest first: a review queue that starts where a new class is
    (agile modeling's search step). Searched with the model whose embeddings the job's files have."""
    settings = settings.model_copy(update={"model": base_model(engine, job_spec(engine, job_id).model)})
    hits = (search_text(engine, text, settings, limit) if text is not None
            else search_like(engine, like, settings, at_s, limit))
    ids = job_file_ids(engine, job_id, [hit.uri for hit in hits])
    return tuple(dict.fromkeys(ids[hit.uri] for hit in hits if hit.uri in ids))
