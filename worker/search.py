"""``soundtag search``: stored windows ranked by cosine to a text's embedding or to one window of
a file. Exact: every stored vector of the model is compared, streamed from the database in chunks
with a running top-k, so memory holds one chunk and the k best, whatever the archive's size."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
from sqlalchemy import Engine

from db import store
from soundtag import hub
from soundtag.errors import SoundtagError
from soundtag.settings import Settings
from worker.runner import classifier_for


@dataclass(frozen=True)
class Hit:
    uri: str
    start_s: float
    end_s: float
    similarity: float

    def as_dict(self) -> dict:
        return asdict(self)


def rank(query: np.ndarray, chunks: Iterable[list[store.StoredEmbeddings]], limit: int) -> list[Hit]:
    """The ``limit`` windows most similar to ``query`` (a unit vector), best first."""
    query = query.astype(np.float32)
    best: list[Hit] = []
    for files in chunks:
        if not files:
            continue
        sims = np.concatenate([found.vectors for found in files]) @ query
        owner = np.repeat(np.arange(len(files)), [len(found.starts) for found in files])
        starts = np.concatenate([found.starts for found in files])
        ends = np.concatenate([found.ends for found in files])
        top = np.argpartition(-sims, limit - 1)[:limit] if len(sims) > limit else np.arange(len(sims))
        best += [Hit(files[owner[i]].uri, float(starts[i]), float(ends[i]), float(sims[i])) for i in top]
        best = sorted(best, key=lambda hit: -hit.similarity)[:limit]
    return best


def search_text(engine: Engine, text: str, settings: Settings, limit: int = 10) -> list[Hit]:
    """Stored windows of ``settings.model`` ranked by cosine to the text's embedding."""
    hub.check(settings.model)
    classifier = classifier_for(settings.model_ref, settings)
    return rank(classifier.embed_text(text), store.embedding_chunks(engine, settings.model_ref, classifier.revision),
                limit)


def search_like(engine: Engine, uri: str, settings: Settings, at_s: float = 0.0, limit: int = 10) -> list[Hit]:
    """Stored windows of ``settings.model`` ranked by cosine to the window of ``uri`` holding
    second ``at_s`` (the first window when none does). Needs no model: only stored vectors."""
    found = store.stored_embeddings_of(engine, settings.model_ref, uri)
    if found is None:
        raise SoundtagError(f"{uri}: no stored embeddings by model {settings.model_ref}; "
                            f"run `soundtag run {uri} --force` to make them")
    stored, revision = found
    inside = np.flatnonzero((stored.starts <= at_s) & (at_s < stored.ends))
    window = int(inside[0]) if len(inside) else 0
    return rank(stored.vectors[window], store.embedding_chunks(engine, settings.model_ref, revision), limit)
