"""A head: one logistic regression per label over a base model's stored window embeddings,
trained from the reviews (``soundtag train``). It scores windows without audio and without the
model: ``sigmoid(vectors @ weights.T + bias)``, one independent probability per label, so a
window may have several labels or none and a threshold keeps its meaning per label."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from soundtag.errors import SoundtagError
from soundtag.taxonomy import Taxonomy

PREFIX = "head:"  # a head's labelings are those of model 'head:NAME@vN'
THRESHOLD = 0.5  # a label passes where its probability reaches it, until `calibrate` says otherwise
_REF = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)(@v(?P<version>[1-9][0-9]*))?$")


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME@vN`` (a ``head:`` prefix allowed) as (name, version or None: the newest)."""
    found = _REF.match(ref.removeprefix(PREFIX))
    if found is None:
        raise SoundtagError(f"head {ref!r}: name it NAME or NAME@vN (letters, digits, '.', '_', '-')")
    return found["name"], int(found["version"]) if found["version"] else None


@dataclass(frozen=True)
class Head:
    """A trained head as stored: ``weights`` (labels × dim) and ``bias`` (labels) in float32,
    for the embeddings of ``base_model`` at ``base_revision``."""

    name: str
    version: int
    base_model: str
    base_revision: str
    labels: tuple[str, ...]
    weights: np.ndarray
    bias: np.ndarray
    metrics: dict = field(default_factory=dict)
    left_out: dict = field(default_factory=dict)  # label: why it has no weights
    id: int | None = None

    @property
    def model(self) -> str:
        """The ``model`` of its labelings in every view."""
        return f"{PREFIX}{self.name}@v{self.version}"

    def taxonomy(self) -> Taxonomy:
        """Its labels as a taxonomy of their own (named for the version, so its hash and its
        thresholds never touch the base taxonomy's), each passing at probability 0.5."""
        return Taxonomy(name=self.model, threshold=THRESHOLD, labels=tuple({"name": label} for label in self.labels))

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """Each window's probability per label, shape (windows, labels), in float64."""
        logits = vectors.astype(np.float64) @ self.weights.astype(np.float64).T + self.bias.astype(np.float64)
        return 1.0 / (1.0 + np.exp(-logits))

    def score(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores and similarities as the labeling tables keep them: both the probability, so the
        views' thresholds (on similarity) and rankings (on score) read the head's output."""
        probabilities = self.probabilities(vectors)
        return probabilities, probabilities
