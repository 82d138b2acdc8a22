"""How far reviewers agree, from their votes on the same items: Cohen's κ for each pair of
reviewers (on the items both judged) and Krippendorff's α, nominal, over everyone (each item
judged by two or more counts), overall and per label (one label against the rest). A vote is
the label an item ends up with in that person's verdict (accept: the model's; correct: theirs;
reject: none), so "rain" and "correct to rain" agree. Pure: votes in, numbers out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

NONE = "(none)"  # the vote of a reject: the item has no label of the taxonomy

Votes = Mapping[Hashable, Mapping[str, str | None]]  # item → reviewer → label (None: no label)


@dataclass(frozen=True)
class Score:
    """An agreement coefficient and the number of items it rests on (None: too few to tell)."""

    value: float | None
    items: int


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> float | None:
    """κ = (p_o − p_e) / (1 − p_e) of two raters' paired labels; 1.0 when both always give the
    one same label (nothing was left to chance), None with no pairs."""
    n = len(first)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(first, second)) / n
    left, right = Counter(first), Counter(second)
    expected = sum(left[label] * right[label] for label in left) / (n * n)
    return 1.0 if expected == 1.0 else (observed - expected) / (1.0 - expected)


def krippendorff_alpha(units: Sequence[Sequence[Hashable]]) -> float | None:
    """Nominal α = 1 − D_o / D_e over the units' values (each unit: the labels its raters gave;
    units with fewer than two are not pairable and left out). 1.0 when every pairable value is
    the same; None without two pairable values."""
    pairable = [list(unit) for unit in units if len(unit) >= 2]
    totals = Counter(value for unit in pairable for value in unit)
    n = sum(totals.values())
    if n < 2:
        return None
    disagreement = 0.0  # observed: within units, weighted 1/(m-1)
    for unit in pairable:
        counts = Counter(unit)
        m = len(unit)
        disagreement += (m * m - sum(c * c for c in counts.values())) / (m - 1)
    expected = (n * n - sum(c * c for c in totals.values())) / (n - 1)
    return 1.0 if expected == 0 else 1.0 - disagreement / expected


def _value(label: str | None, only: str | None) -> Hashable:
    value = NONE if label is None else label
    return value if only is None else value == only


def pairwise_kappa(votes: Votes, only: str | None = None) -> dict[tuple[str, str], Score]:
    """κ for each pair of reviewers who judged items in common (names in order); with ``only``,
    on whether each voted that label."""
    people = sorted({person for item in votes.values() for person in item})
    scores = {}
    for a, b in combinations(people, 2):
        shared = [item for item in votes.values() if a in item and b in item]
        if shared:
            scores[(a, b)] = Score(cohen_kappa([_value(item[a], only) for item in shared],
                                               [_value(item[b], only) for item in shared]), len(shared))
    return scores


def alpha(votes: Votes, only: str | None = None) -> Score:
    """Krippendorff's α over every item two or more people judged; with ``only``, that label
    against the rest."""
    units = [[_value(label, only) for label in item.values()] for item in votes.values()]
    return Score(krippendorff_alpha(units), sum(len(unit) >= 2 for unit in units))


def with_settled(votes: Votes, settled: Mapping[Hashable, str | None]) -> dict[str, Score]:
    """Each reviewer's share of votes equal to the settled label, over the settled items they judged."""
    matched: Counter = Counter()
    judged: Counter = Counter()
    for item, people in votes.items():
        if item not in settled:
            continue
        for person, label in people.items():
            judged[person] += 1
            matched[person] += label == settled[item]
    return {person: Score(matched[person] / judged[person], judged[person]) for person in sorted(judged)}


@dataclass(frozen=True)
class Measure:
    """One number of a job's agreement, as the ``agreement`` view keeps it: ``alpha`` over
    everyone (``label`` None) or of one label against the rest, ``kappa`` of a pair of reviewers,
    ``settled``: a reviewer's share of votes equal to the settled label."""

    measure: str
    score: Score
    label: str | None = None
    reviewer: str | None = None
    other_reviewer: str | None = None


def measures(votes: Votes, settled: Mapping[Hashable, str | None]) -> list[Measure]:
    """Every number ``soundtag agreement`` reports on ``votes``: α overall and per label given,
    κ per pair, each reviewer against ``settled`` (the items' settled labels)."""
    labels = sorted({label for item in votes.values() for label in item.values() if label is not None})
    return ([Measure("alpha", alpha(votes))]
            + [Measure("alpha", alpha(votes, only=label), label=label) for label in labels]
            + [Measure("kappa", score, reviewer=a, other_reviewer=b) for (a, b), score in pairwise_kappa(votes).items()]
            + [Measure("settled", score, reviewer=person) for person, score in with_settled(votes, settled).items()])
