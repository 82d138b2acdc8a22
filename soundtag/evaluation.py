"""Scoring labels against the truth a dataset carries: accuracy and top-k accuracy of the rank-1
label, coverage and accuracy of the decisions, precision and recall per label (of the rank-1
label, and of the tags at the thresholds), the confusion matrix, and precision-recall curves over
the cosine. Pure functions of plain values; only the ``plot_*`` functions write a file."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from soundtag.calibration import Point, curve, truths


@dataclass(frozen=True)
class ClassScore:
    label: str
    support: int  # files whose truth includes this label
    predicted: int  # files whose rank-1 label is this label
    correct: int  # of those, the ones whose truth includes it
    tagged: int  # files this label tags: it passes its threshold there
    tag_correct: int  # of those, the ones whose truth includes it

    @property
    def precision(self) -> float | None:
        return self.correct / self.predicted if self.predicted else None

    @property
    def recall(self) -> float | None:
        return self.correct / self.support if self.support else None

    @property
    def tag_precision(self) -> float | None:
        return self.tag_correct / self.tagged if self.tagged else None

    @property
    def tag_recall(self) -> float | None:
        return self.tag_correct / self.support if self.support else None


@dataclass(frozen=True)
class Evaluation:
    k: int
    files: int  # files compared: a result, and a truth that names a taxonomy label
    top1: int  # of those, the rank-1 label is one of the truths
    topk: int  # of those, a truth is among the first k
    decided: int  # of those, the files that do not abstain
    decided_correct: int  # of those, the decision is one of the truths
    classes: tuple[ClassScore, ...]  # labels that are a truth, a rank-1 label or a tag, in taxonomy order
    confusion: tuple[tuple[int, ...], ...]  # [truth][rank-1 label] of single-truth files, indexed like `classes`
    single: int  # files with one truth: those the confusion matrix counts
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
    def coverage(self) -> float:
        return self.decided / self.files if self.files else 0.0

    @property
    def covered_accuracy(self) -> float | None:
        return self.decided_correct / self.decided if self.decided else None

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.classes]


def _known(value: str | None, canonical: Mapping[str, str]) -> frozenset[str]:
    """The taxonomy labels a truth cell names, whatever their case; the other names are dropped."""
    return frozenset(canonical[t.casefold()] for t in truths(value) if t.casefold() in canonical)


def evaluate(files: Iterable[tuple[str | None, Sequence[str], str | None, Collection[str]]],
             taxonomy: Sequence[str], k: int = 5) -> Evaluation:
    """Score each file's ``(truth, labels best first, decision, tags)``: the decision is None when
    the file abstains; the tags are the labels that pass their thresholds. A truth names one label
    or several separated by ';', matched whatever their case and surrounding blanks; a file none
    of whose truths is a taxonomy label is counted in ``missing``, not as an error, since no model
    could have chosen it. Tags that are no taxonomy label (groups) are not scored."""
    canonical = {name.casefold(): name for name in taxonomy}
    missing: Counter[str] = Counter()
    unlabeled = no_truth = 0
    compared: list[tuple[frozenset[str], Sequence[str], str | None, frozenset[str]]] = []
    for truth, ranked, decision, tags in files:
        known = _known(truth, canonical)
        if not truths(truth):
            no_truth += 1
        elif not known:
            missing[truth.strip()] += 1
        elif not ranked:
            unlabeled += 1
        else:
            compared.append((known, ranked, decision, frozenset(tags) & set(taxonomy)))
    support = Counter(label for known, _, _, _ in compared for label in known)
    predicted = Counter(ranked[0] for _, ranked, _, _ in compared)
    correct = Counter(ranked[0] for known, ranked, _, _ in compared if ranked[0] in known)
    tagged = Counter(label for _, _, _, tags in compared for label in tags)
    tag_correct = Counter(label for known, _, _, tags in compared for label in tags & known)
    labels = [name for name in taxonomy if support[name] or predicted[name] or tagged[name]]
    index = {name: i for i, name in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    # A file with several truths has no one row to count its rank-1 label in.
    single = [(next(iter(known)), ranked) for known, ranked, _, _ in compared if len(known) == 1]
    for truth, ranked in single:
        matrix[index[truth]][index[ranked[0]]] += 1
    decided = [(known, decision) for known, _, decision, _ in compared if decision is not None]
    return Evaluation(
        k=k, files=len(compared), top1=sum(correct.values()),
        topk=sum(bool(known & set(ranked[:k])) for known, ranked, _, _ in compared),
        decided=len(decided), decided_correct=sum(decision in known for known, decision in decided),
        classes=tuple(ClassScore(name, support[name], predicted[name], correct[name], tagged[name],
                                 tag_correct[name]) for name in labels),
        confusion=tuple(tuple(row) for row in matrix), single=len(single), missing=dict(missing.most_common()),
        unlabeled=unlabeled, no_truth=no_truth)


def curves(files: Iterable[tuple[str | None, Mapping[str, float]]],
           taxonomy: Sequence[str]) -> dict[str, list[Point]]:
    """Each label's precision-recall curve over the cosine, from ``(truth, cosine per label)`` of
    each file, on the files ``evaluate`` compares (a truth naming a taxonomy label); labels that no
    truth names have none."""
    canonical = {name.casefold(): name for name in taxonomy}
    known = [(found, cosines) for truth, cosines in files if (found := _known(truth, canonical))]
    return {label: curve((cosines[label], label in found) for found, cosines in known if label in cosines)
            for label in taxonomy if any(label in found for found, _ in known)}


def at_threshold(points: Sequence[Point], threshold: float) -> Point | None:
    """The point of a curve where ``threshold`` lies: the same files pass both. None when no cosine
    reaches it (the label tags nothing)."""
    passing = [point for point in points if point.threshold >= threshold]
    return passing[-1] if passing else None


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # The Figure API with an explicit Agg canvas: no pyplot, no GUI backend, no global state.
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def plot_confusion(evaluation: Evaluation, path: str | Path, title: str = "") -> None:
    """Write the confusion matrix (truth × rank-1 label, single-truth files) as an image; the
    format follows the file's extension. Needs matplotlib."""
    labels, matrix = evaluation.labels, evaluation.confusion
    side = max(4.0, 2.5 + 0.35 * len(labels))
    figure = _figure(side + 1, side)
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


def plot_curves(found: Mapping[str, Sequence[Point]], thresholds: Mapping[str, float | None], path: str | Path,
                title: str = "", most: int = 48) -> None:
    """Write each label's precision-recall curve over the cosine, one panel per label, with the
    point of its current threshold marked (labels without one tag their rank-1 files only, which
    is no point of the curve). Beyond ``most`` labels, those with the most support. The format
    follows the file's extension. Needs matplotlib."""
    title = title or "precision-recall over the cosine; ● the current threshold"
    if len(found) > most:  # an AudioSet-sized taxonomy would make a figure no one can open
        kept = set(sorted(found, key=lambda label: -found[label][-1].hits)[:most])
        title += f" ({most} of {len(found)} labels: those with most support)"
        found = {label: points for label, points in found.items() if label in kept}
    columns = min(4, max(1, len(found)))
    rows = max(1, math.ceil(len(found) / columns))
    figure = _figure(3.0 * columns, 2.8 * rows + 0.4)
    grid = figure.subplots(rows, columns, squeeze=False)
    panels = [axes for row in grid for axes in row]
    for axes, (label, points) in zip(panels, found.items()):
        axes.plot([p.recall for p in points], [p.precision for p in points], marker=".", markersize=3,
                  linewidth=1)
        threshold = thresholds.get(label)
        point = None if threshold is None else at_threshold(points, threshold)
        if point is not None:
            axes.plot([point.recall], [point.precision], "o", color="crimson")
            axes.annotate(f"{threshold:.3f}", (point.recall, point.precision), textcoords="offset points",
                          xytext=(4, -10), fontsize=7, color="crimson")
        note = "no threshold" if threshold is None else "tags nothing" if point is None else ""
        support = points[-1].hits if points else 0
        axes.set_title(f"{label} (n={support})" + (f" · {note}" if note else ""), fontsize=9)
        axes.set_xlim(0, 1.02)
        axes.set_ylim(0, 1.05)
        axes.set_xlabel("recall", fontsize=8)
        axes.set_ylabel("precision", fontsize=8)
        axes.tick_params(labelsize=7)
    for axes in panels[len(found):]:
        axes.set_visible(False)
    figure.suptitle(title, fontsize=10, wrap=True)  # wrapped: a figure of one or two panels is narrow
    figure.savefig(path, dpi=120)
