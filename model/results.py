"""What labeling learns about a file, whichever way it was computed (the pipeline from audio, or
stored window embeddings): its windows' scores and cosines, and their mean per file."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from soundtag.states import Failure


@dataclass
class WindowResult:
    """One window's scores and cosines per label, and its audio embedding when kept."""

    start_s: float
    end_s: float
    scores: np.ndarray
    similarity: np.ndarray
    embedding: np.ndarray | None = None  # the window's audio embedding, kept for relabel and search


@dataclass
class FileResult:
    """Everything learned about one file: metadata, and either scores or the reason it failed."""

    uri: str
    error: str | None = None
    failure: Failure | None = None  # the error's kind
    duration_s: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    content_hash: str | None = None
    recorded_at: datetime | None = None  # when and where, as soundtag.recording reads them
    site: str | None = None
    scores: np.ndarray | None = None
    similarity: np.ndarray | None = None
    segments: list[WindowResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None



def aggregate(scores: np.ndarray, similarity: np.ndarray, counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """File-level results of consecutive files whose windows are the rows of ``scores`` and
    ``similarity`` (``counts`` windows each, at least one): the mean over each file's windows.
    Windows are all the same length (the last is end-aligned), so a plain mean weighs every
    second alike. Many files at once, as a relabel scores them."""
    starts = np.cumsum(counts) - counts
    windows = np.asarray(counts, dtype=np.float64)[:, None]
    return (np.add.reduceat(scores, starts, axis=0) / windows,
            np.add.reduceat(similarity, starts, axis=0) / windows)
