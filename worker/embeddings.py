"""Results from stored audio embeddings: a file's windows scored against any taxonomy without
its recording, by the formula the pipeline uses (``clap.score``, ``labeling.aggregate``)."""

from __future__ import annotations

import numpy as np

from db.store import StoredEmbeddings
from worker.clap import score
from worker.labeling import FileResult, Segment, aggregate


def result_from_stored(stored: StoredEmbeddings, labels: np.ndarray, logit_scale: float) -> FileResult:
    """The FileResult a labeling of the recording would give, scored from its stored windows."""
    scores, similarity = score(stored.vectors, labels, logit_scale)
    segments = [Segment(float(start), float(end), s, sim)
                for start, end, s, sim in zip(stored.starts, stored.ends, scores, similarity)]
    result = FileResult(stored.uri, duration_s=stored.duration_s, sample_rate=stored.sample_rate,
                        channels=stored.channels, content_hash=stored.content_hash, segments=segments)
    result.scores, result.similarity = aggregate(segments)
    return result
