"""Results from stored audio embeddings: a file's windows scored against any taxonomy without
its recording, by the formula the pipeline uses (``clap.score``, ``labeling.aggregate``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sqlalchemy import Engine

from db.embeddings import StoredEmbeddings, Unreadable, embedding_models
from soundtag.errors import SoundtagError
from soundtag.settings import Settings
from worker.clap import score
from worker.labeling import FileResult, Segment, aggregate


def results_from_stored(stored: Sequence[StoredEmbeddings | Unreadable], labels: np.ndarray,
                        logit_scale: float) -> list[FileResult]:
    """The FileResults a labeling of the recordings would give, scored from their stored windows:
    all the files' windows in one product with the label embeddings (one per file cost more than
    the rest of a relabel). A file whose row is damaged fails, with the reason."""
    failed = [FileResult(found.uri, error=found.reason) for found in stored if isinstance(found, Unreadable)]
    files = [found for found in stored if isinstance(found, StoredEmbeddings)]
    if not files:
        return failed
    counts = [len(found.starts) for found in files]
    scores, similarity = score(np.concatenate([found.vectors for found in files]), labels, logit_scale)
    file_scores, file_similarity = aggregate(scores, similarity, counts)
    results, at = [], 0
    for i, (found, count) in enumerate(zip(files, counts)):
        segments = [Segment(start, end, s, sim) for start, end, s, sim in zip(
            found.starts.tolist(), found.ends.tolist(), scores[at:at + count], similarity[at:at + count])]
        at += count
        results.append(FileResult(found.uri, duration_s=found.duration_s, sample_rate=found.sample_rate,
                                  channels=found.channels, content_hash=found.content_hash,
                                  scores=file_scores[i], similarity=file_similarity[i], segments=segments))
    return results + failed


def with_stored_model(engine: Engine, settings: Settings, uris: Sequence[str] | None = None) -> Settings:
    """``settings`` with the model of the stored embeddings (of ``uris``, else all) when no model
    was chosen (--model, SOUNDTAG_MODEL): what made them is what can read them, offline too.
    Raises SoundtagError naming the models when they are several."""
    if "model" in settings.model_fields_set:
        return settings
    models = embedding_models(engine, uris)
    if len(models) > 1:
        raise SoundtagError(f"stored embeddings are by {len(models)} models ({', '.join(models)}): "
                            "choose one with --model")
    return settings.model_copy(update={"model": models[0]}) if models else settings
