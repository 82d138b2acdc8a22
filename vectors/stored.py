"""Results from stored audio embeddings: a file's windows scored without its recording, against
any taxonomy by the formula the pipeline uses (``clap.score``, ``labeling.aggregate``), or by a
trained head (``heads.head.Head.score``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sqlalchemy import Engine

from db.embeddings import StoredEmbeddings, Unreadable, embedding_models
from model.classifier import score
from model.results import FileResult, WindowResult, aggregate
from soundtag.errors import SoundtagError
from soundtag.settings import Settings
from soundtag.states import Failure

# Window vectors → (scores, similarities), each windows × labels.
Scorer = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def zero_shot(labels: np.ndarray, logit_scale: float) -> Scorer:
    """The pipeline's scorer: cosines with the label embeddings, softmax at the model's scale."""
    return lambda vectors: score(vectors, labels, logit_scale)


def results_from_stored(stored: Sequence[StoredEmbeddings | Unreadable], scorer: Scorer) -> list[FileResult]:
    """The FileResults a labeling of the recordings would give, scored from their stored windows:
    all the files' windows in one product (one per file cost more than the rest of a relabel).
    A file whose row is damaged fails, with the reason."""
    failed = [FileResult(found.uri, error=found.reason, failure=Failure.UNREADABLE) for found in stored if isinstance(found, Unreadable)]
    files = [found for found in stored if isinstance(found, StoredEmbeddings)]
    if not files:
        return failed
    counts = [len(found.starts) for found in files]
    scores, similarity = scorer(np.concatenate([found.vectors for found in files]))
    file_scores, file_similarity = aggregate(scores, similarity, counts)
    results, at = [], 0
    for i, (found, count) in enumerate(zip(files, counts)):
        segments = [WindowResult(start, end, s, sim) for start, end, s, sim in zip(
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


def stored_from(result: FileResult) -> StoredEmbeddings | None:
    """A labeled file's windows as stored embeddings, for another scorer of the same pass (a
    head); None unless every window carries its embedding."""
    if not result.segments or any(seg.embedding is None for seg in result.segments):
        return None
    return StoredEmbeddings(0, result.uri, np.array([seg.start_s for seg in result.segments]),
                            np.array([seg.end_s for seg in result.segments]),
                            np.stack([seg.embedding for seg in result.segments]).astype(np.float32),
                            result.duration_s, result.sample_rate, result.channels, result.content_hash)
