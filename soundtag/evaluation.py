"""Scoring labels against the truth a dataset carries: accuracy, top-k accuracy, precision and
recall per class, the confusion matrix. Pure functions of (truth, ranked labels) pairs; only
``plot_confusion`` writes a file."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ClassScore:
    label: str
    support: int  # files whose truth is this label
    predicted: int  # files whose rank-1 label is this label
    correct: int

    @property
    def precision(self) -> float | None:
        return self.correct / self.predicted if self.predicted else None

    @property
    def recall(self) -> float | None:
        return self.correct / self.support if self.support else None


@dataclass(frozen=True)
class Evaluation:
    k: int
    files: int  # files compared: a result, and a truth that names a taxonomy label
    top1: int  # of those, rank 1 is the truth
    topk: int  # of those, the truth is among the first k
    classes: tuple[ClassScore, ...]  # labels that are a truth or a rank-1 label, in taxonomy order
    confusion: tuple[tuple[int, ...], ...]  # [truth][rank-1 label], both indexed like `classes`
    missing: dict[str, int]  # truths that name no taxonomy label → how many files
    unlabeled: int  # files with a truth but no result (failed)
    no_truth: int

    @property
    def accuracy(self) -> float:
        return self.top1 / self.files if self.files else 0.0

    @property
    def topk_accuracy(self) -> float:
        return self.topk / self.files if self.files else 0.0

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.classes]


def evaluate(pairs: Iterable[tuple[str | None, Sequence[str]]], taxonomy: Sequence[str], k: int = 5) -> Evaluation:
    """Score ``(truth, labels best first)`` pairs. A truth matches a taxonomy label whatever its
    case and surrounding blanks; truths that match none are counted in ``missing``, not as
    errors, since no model could have chosen them."""
    canonical = {name.casefold(): name for name in taxonomy}
    missing: Counter[str] = Counter()
    unlabeled = no_truth = 0
    compared: list[tuple[str, Sequence[str]]] = []
    for truth, ranked in pairs:
        if truth is None or not truth.strip():
            no_truth += 1
        elif truth.strip().casefold() not in canonical:
            missing[truth.strip()] += 1
        elif not ranked:
            unlabeled += 1
        else:
            compared.append((canonical[truth.strip().casefold()], ranked))
    support = Counter(truth for truth, _ in compared)
    predicted = Counter(ranked[0] for _, ranked in compared)
    correct = Counter(truth for truth, ranked in compared if ranked[0] == truth)
    labels = [name for name in taxonomy if support[name] or predicted[name]]
    index = {name: i for i, name in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for truth, ranked in compared:
        matrix[index[truth]][index[ranked[0]]] += 1
    return Evaluation(
        k=k, files=len(compared), top1=sum(correct.values()),
        topk=sum(truth in ranked[:k] for truth, ranked in compared),
        classes=tuple(ClassScore(name, support[name], predicted[name], correct[name]) for name in labels),
        confusion=tuple(tuple(row) for row in matrix), missing=dict(missing.most_common()),
        unlabeled=unlabeled, no_truth=no_truth)


def plot_confusion(evaluation: Evaluation, path: str | Path, title: str = "") -> None:
    """Write the confusion matrix (truth × rank-1 label) as an image; the format follows the
    file's extension. Needs matplotlib."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels, matrix = evaluation.labels, evaluation.confusion
    side = max(4.0, 2.5 + 0.35 * len(labels))
    # The Figure API with an explicit Agg canvas: no pyplot, no GUI backend, no global state.
    figure = Figure(figsize=(side + 1, side), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    image = axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=90)
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("rank-1 label")
    axes.set_ylabel("truth")
    axes.set_title(title or f"accuracy {evaluation.accuracy:.1%} on {evaluation.files} files")
    if len(labels) <= 30:  # beyond that the numbers no longer fit their cells
        top = max((max(row) for row in matrix), default=0)
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                if count:
                    axes.text(j, i, str(count), ha="center", va="center", fontsize=8,
                              color="white" if count > top / 2 else "black")
    figure.colorbar(image, ax=axes, shrink=0.8)
    figure.savefig(path, dpi=120)
