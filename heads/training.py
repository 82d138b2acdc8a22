"""Fitting a head: one logistic regression per label (scikit-learn) on window embeddings, with
cross-validated numbers beside zero-shot's on the same folds. Pure: arrays in, arrays out.

As Perch's agile modeling does (perch-hoplite ``agile/classifier.py``: a linear head, unlabeled
windows as negatives weighted 0.05), every window nobody spoke about for a label is a weak
negative for it; the verdicts' positives and negatives are balanced against each other, so a
label with 5 accepts and 200 rejects is not learned as "never"."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

WEAK_WEIGHT = 0.05
FOLDS = 5
MIN_EACH = 2  # positive and negative files a label needs: fewer cannot be cross-validated
MAX_WEAK = 2000  # weak negatives drawn (seeded) per fit: more add time (5,000: twice the fit), not information
REGULARISATION = 1.0  # scikit-learn's C, on standardised features


@dataclass(frozen=True)
class Examples:
    """Windows to learn from: their vectors (windows × dim), the file each belongs to (folds
    split by file: windows of one recording are near-copies), the targets (windows × labels:
    1, 0, or NaN for a weak negative) and, where the base labeling's text embeddings are known,
    each window's zero-shot cosine per label (NaN where not)."""

    vectors: np.ndarray
    files: np.ndarray
    targets: np.ndarray
    zero_shot: np.ndarray


@dataclass(frozen=True)
class LabelReport:
    label: str
    positives: int  # files with a positive window
    negatives: int  # files with a negative window
    left_out: str | None = None  # why the label has no weights
    folds: int = 0
    head: dict = field(default_factory=dict)  # precision, recall (at 0.5), average_precision
    zero_shot: dict = field(default_factory=dict)  # the same for the base model's cosines (rank 1 decides)


@dataclass(frozen=True)
class Fitted:
    labels: tuple[str, ...]  # those with weights, in the order of the rows
    weights: np.ndarray  # labels × dim, float32
    bias: np.ndarray  # labels, float32
    reports: tuple[LabelReport, ...]  # every label asked for, kept or left out


def _counts(examples: Examples, column: int) -> tuple[int, int]:
    target = examples.targets[:, column]
    return (len(np.unique(examples.files[target == 1.0])), len(np.unique(examples.files[target == 0.0])))


def _weights(target: np.ndarray, weak_weight: float) -> np.ndarray:
    """Positives and negatives of the verdicts weigh alike in total (each class n/2), weak negatives
    ``weak_weight`` each."""
    weights = np.full(len(target), weak_weight)
    strong = ~np.isnan(target)
    n = strong.sum()
    for value in (0.0, 1.0):
        mask = target == value
        weights[mask] = n / (2.0 * mask.sum())
    return weights


def _fit_one(vectors: np.ndarray, target: np.ndarray, weak_weight: float, seed: int) -> tuple[np.ndarray, float]:
    """Weights and bias on the raw vectors for one label, fitted on standardised ones (unit
    vectors of a CLAP differ in small coordinates around a shared direction)."""
    from sklearn.linear_model import LogisticRegression

    weak = np.flatnonzero(np.isnan(target))
    if len(weak) > MAX_WEAK:
        keep = np.sort(np.random.default_rng(seed).choice(weak, MAX_WEAK, replace=False))
        rows = np.sort(np.concatenate([np.flatnonzero(~np.isnan(target)), keep]))
        vectors, target = vectors[rows], target[rows]
    mean = vectors.mean(axis=0)
    scale = vectors.std(axis=0) + 1e-6
    model = LogisticRegression(C=REGULARISATION, max_iter=500)
    model.fit((vectors - mean) / scale, np.nan_to_num(target, nan=0.0).astype(int),
              sample_weight=_weights(target, weak_weight))
    weights = model.coef_[0] / scale
    return weights, float(model.intercept_[0] - weights @ mean)


def _probabilities(vectors: np.ndarray, weights: np.ndarray, bias: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(vectors.astype(np.float64) @ weights + bias)))


def _scores(truth: np.ndarray, scores: np.ndarray, predicted: np.ndarray) -> dict:
    from sklearn.metrics import average_precision_score

    hits = int((predicted & truth).sum())
    return {"precision": hits / predicted.sum() if predicted.sum() else 0.0,
            "recall": hits / truth.sum() if truth.sum() else 0.0,
            "average_precision": float(average_precision_score(truth, scores))}


def _cross_validated(examples: Examples, column: int, folds: int, weak_weight: float,
                     seed: int) -> tuple[dict, dict]:
    """The head's and zero-shot's numbers on the labeled windows of held-out files, each file
    held out once (stratified by whether it has a positive)."""
    from sklearn.model_selection import StratifiedGroupKFold

    target = examples.targets[:, column]
    strong = np.flatnonzero(~np.isnan(target))
    split = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    held = np.zeros(len(target), dtype=bool)
    head = np.full(len(target), np.nan)
    for _, test in split.split(strong, target[strong].astype(int), examples.files[strong]):
        out = np.isin(examples.files, examples.files[strong[test]])
        weights, bias = _fit_one(examples.vectors[~out], target[~out], weak_weight, seed)
        rows = strong[test]
        head[rows] = _probabilities(examples.vectors[rows], weights, bias)
        held[rows] = True
    truth = target[held] == 1.0
    found = {key: round(value, 4) for key, value in _scores(truth, head[held], head[held] >= 0.5).items()}
    cosines = examples.zero_shot[held]
    if np.isnan(cosines[:, column]).any():
        return found, {}
    best = np.where(np.isnan(cosines), -np.inf, cosines).argmax(axis=1) == column
    zero = {key: round(value, 4) for key, value in _scores(truth, cosines[:, column], best).items()}
    return found, zero


def fit(examples: Examples, labels: Sequence[str], *, weak_weight: float = WEAK_WEIGHT, folds: int = FOLDS,
        seed: int = 0, cross_validate: bool = True) -> Fitted:
    """One logistic regression per label with at least MIN_EACH positive and negative files,
    cross-validated over ``folds`` (fewer when a label has fewer files); the others are left out,
    each with its reason."""
    kept, rows, biases, reports = [], [], [], []
    for column, label in enumerate(labels):
        positives, negatives = _counts(examples, column)
        if positives < MIN_EACH or negatives < MIN_EACH:
            reports.append(LabelReport(label, positives, negatives, left_out=(
                f"{positives} positive and {negatives} negative files; it needs at least {MIN_EACH} of each")))
            continue
        k = min(folds, positives, negatives)
        head, zero = (_cross_validated(examples, column, k, weak_weight, seed) if cross_validate else ({}, {}))
        weights, bias = _fit_one(examples.vectors, examples.targets[:, column], weak_weight, seed)
        kept.append(label)
        rows.append(weights)
        biases.append(bias)
        reports.append(LabelReport(label, positives, negatives, folds=k if cross_validate else 0, head=head,
                                   zero_shot=zero))
    dim = examples.vectors.shape[1]
    return Fitted(tuple(kept), np.array(rows, dtype=np.float32).reshape(len(kept), dim),
                  np.array(biases, dtype=np.float32), tuple(reports))
