"""The order in which items (files or segments) are reviewed. Pure functions of the items: no I/O."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from db.reviews import ReviewItem


class Order(StrEnum):
    UNCERTAIN = "uncertain"  # the smallest margin between the first two scores first, then lowest cosine
    CONFIDENT = "confident"  # the reverse
    RANDOM = "random"  # shuffled by a seed: the same seed gives the same order
    STRATIFIED = "stratified"  # in turn per decided label, and within each across cosine bins
    LEARN = "learn"  # spread over the embedding space first, then where a head's best two labels are closest
    VALIDATE = "validate"  # a label's validation sample, as review.validation draws it: equal per score bin
    # admins: the items whose votes disagree and no adjudicator settled (review.queue draws them), by
    # file and time, so that one recording's disputes are heard in a row
    ADJUDICATE = "adjudicate"


BINS = 4
# Squared distances this small are rounding: a known row's from itself, a copy's from its original.
SAME = 1e-9
DIVERSE = 100  # items the learn order spreads before a head exists: k-centre costs items × picks


@dataclass(frozen=True)
class Learning:
    """What the learn order reads beyond the items, by file id: each item's embedding (the mean
    of its windows'), the embeddings of what was already reviewed (where the spreading starts
    from) and, once a head is trained, each item's probabilities per label."""

    vectors: dict[int, np.ndarray] = field(default_factory=dict)
    known: tuple[np.ndarray, ...] = ()
    probabilities: dict[int, np.ndarray] | None = None


def ordered(items: Sequence[ReviewItem], order: Order, seed: str = "",
            learning: Learning | None = None) -> list[ReviewItem]:
    if order == Order.LEARN:
        return _learn(items, learning or Learning(), seed)
    if order == Order.VALIDATE:  # the items come drawn in this order (review.validation)
        return list(items)
    if order == Order.ADJUDICATE:
        return sorted(items, key=lambda i: i.key)
    if order == Order.UNCERTAIN:
        return sorted(items, key=lambda i: (i.margin, i.similarity, i.key))
    if order == Order.CONFIDENT:
        return sorted(items, key=lambda i: (-i.margin, -i.similarity, i.key))
    if order == Order.RANDOM:
        shuffled = sorted(items, key=lambda i: i.key)
        random.Random(seed).shuffle(shuffled)
        return shuffled
    return _stratified(items, seed)


def _stratified(items: Sequence[ReviewItem], seed: str) -> list[ReviewItem]:
    """Round-robin over the labels, and for each label over its cosine bins (quantiles of that
    label's cosines), so the first few dozen verdicts already cover every label at every
    confidence. Within a bin the order is random (seeded)."""
    rng = random.Random(seed)
    by_label: dict[str, list[ReviewItem]] = defaultdict(list)
    for item in sorted(items, key=lambda i: i.key):
        by_label[item.decision or ""].append(item)
    queues: list[list[list[ReviewItem]]] = []
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda i: (i.similarity, i.key))
        bins = [group[len(group) * b // BINS: len(group) * (b + 1) // BINS] for b in range(BINS)]
        for one in bins:
            rng.shuffle(one)
        queues.append([one for one in bins if one])
    result: list[ReviewItem] = []
    while any(queues):
        for bins in queues:
            if bins:
                result.append(bins[0].pop())
                bins.append(bins.pop(0))
                if not bins[-1]:
                    bins.pop()
    return result


def k_centre(vectors: np.ndarray, picks: int, seed: str = "", known: np.ndarray | None = None) -> list[int]:
    """Greedy k-centre (Sener and Savarese's core-set selection): each pick the row farthest from
    every row picked before and from ``known``; the first, without ``known``, drawn by the seed.
    Rows of one recording's near-copies are thus taken once before anything is taken twice."""
    return Spread(vectors, picks, seed, known).picks


class Spread:
    """``k_centre``'s picks, kept and brought up to date as known centres (reviewed items) arrive:
    the picks a new centre leaves as they were are kept, so a reviewer who takes the picks in
    order costs one more pick per verdict instead of all of them again (issue 27: 5.4 s per
    request at 20,000 items; choosing all of them afresh still takes seconds there, as each pick
    reads every vector). Distances are squared, which orders them alike; float64, whose rounding
    is far below the gaps between 20,000 distances (float32's is not), so picks do not depend on
    how the products were grouped. Each pick keeps the distances it was chosen from and those
    from itself: 2 × ``picks`` × rows floats."""

    def __init__(self, vectors: np.ndarray, picks: int, seed: str = "", known: np.ndarray | None = None) -> None:
        self.vectors = np.asarray(vectors, dtype=np.float64).reshape(len(vectors), -1 if len(vectors) else 0)
        self.limit = min(picks, len(self.vectors))
        self.seed = seed
        self._squares = np.einsum("ij,ij->i", self.vectors, self.vectors)
        self._nearest = np.full(len(self.vectors), np.inf)  # after the last pick
        if known is not None and len(known) and len(self.vectors):
            self._nearest = self._distances(np.asarray(known, dtype=np.float64)).min(axis=0)
        self.picks: list[int] = []
        self._before: list[np.ndarray] = []  # what each pick was chosen from
        self._from_row: dict[int, np.ndarray] = {}
        self._grow()

    def _distances(self, centres: np.ndarray) -> np.ndarray:
        """Centres × rows squared distances."""
        centres = centres.reshape(-1, self.vectors.shape[1])
        products = centres @ self.vectors.T
        return np.maximum(self._squares - 2 * products + np.einsum("ij,ij->i", centres, centres)[:, None], 0)

    def _grow(self) -> None:
        while len(self.picks) < self.limit:
            nearest = self._nearest
            if not np.isfinite(nearest).any():
                pick = random.Random(self.seed).randrange(len(nearest))
            elif nearest.max() > SAME:
                pick = int(np.argmax(nearest))
            else:  # every row left is known or a copy of one: spreading is over
                break
            if pick not in self._from_row:
                self._from_row[pick] = self._distances(self.vectors[pick])[0]
            self._before.append(nearest)
            self.picks.append(pick)
            nearest = np.minimum(nearest, self._from_row[pick])
            nearest[self.picks] = -1.0
            self._nearest = nearest
        if len(self._from_row) > 2 * self.limit:
            self._from_row = {pick: self._from_row[pick] for pick in self.picks}

    def add(self, centre: np.ndarray, row: int | None = None) -> None:
        """One more known centre (``row``: its row, when it is one). A pick stays while the centre
        is no nearer it than the distance it was chosen at (it stays the farthest row); the first
        pick the centre comes nearer, and every one after, is chosen again; the centre's own row,
        if picked, is dropped (the picks after it were chosen as if it were known) and one more is
        taken at the end."""
        if row in self._from_row:
            distances = self._from_row[row]
        else:
            distances = self._distances(np.asarray(centre, dtype=np.float64))[0]
        for t, pick in enumerate(self.picks):
            if pick == row:
                del self.picks[t], self._before[t]
                break
            if distances[pick] < self._before[t][pick]:
                self._nearest = self._before[t]
                del self.picks[t:], self._before[t:]
                break
        self._before = [np.minimum(before, distances) for before in self._before]
        self._nearest = np.minimum(self._nearest, distances)
        self._grow()


def boundary_distance(probabilities: np.ndarray) -> float:
    """How far the head is from changing its mind about an item: the margin between its two most
    probable labels (with one label, between yes and no: |2p − 1|, twice its distance to 0.5).
    The least |p − 0.5| of the labels was measured too and lost to plain random review
    (docs/benchmarks.md): a kind of sound no verdict has named yet is a confident "no" for every
    label, so it never came near 0.5; the margin finds it, its best two labels alike unlikely."""
    p = np.sort(np.asarray(probabilities, dtype=np.float64))[::-1]
    return float(p[0] - p[1]) if len(p) > 1 else float(abs(2 * p[0] - 1))


def learn_split(items: Sequence[ReviewItem], vectors: dict[int, np.ndarray]) -> tuple[list[ReviewItem], list[ReviewItem]]:
    """The items with stored embeddings (by file id: the rows the learn order spreads over), and
    the rest as ``uncertain`` orders them (they come last)."""
    placed = sorted((item for item in items if item.file_id in vectors), key=lambda i: (i.file_id, i.key))
    return placed, ordered([item for item in items if item.file_id not in vectors], Order.UNCERTAIN)


def spread_first(placed: Sequence[ReviewItem], picks: Sequence[int], uncertain: Sequence[ReviewItem]) -> list[ReviewItem]:
    """``placed``'s rows ``picks`` first, then the others in ``uncertain``'s order (``placed``
    as ``uncertain`` orders it)."""
    chosen = {id(placed[row]) for row in picks}
    return [placed[row] for row in picks] + [item for item in uncertain if id(item) not in chosen]


def _learn(items: Sequence[ReviewItem], learning: Learning, seed: str) -> list[ReviewItem]:
    """Before a head exists, the first DIVERSE items spread over the embedding space (k-centre),
    then the rest as ``uncertain`` orders them; once one exists, all by the margin between its two
    most probable labels, smallest first: diversity to start cold, uncertainty once the head has something
    to be uncertain about (TCM's switch, which BioDCASE 2026's active-learning task measures).
    Items without stored embeddings come last, as ``uncertain`` orders them."""
    placed, rest = learn_split(items, learning.vectors)
    if learning.probabilities is not None:
        scored = [item for item in placed if item.file_id in learning.probabilities]
        unscored = [item for item in placed if item.file_id not in learning.probabilities]
        return (sorted(scored, key=lambda i: (boundary_distance(learning.probabilities[i.file_id]), i.file_id))
                + ordered(unscored, Order.UNCERTAIN) + rest)
    known = np.array(learning.known) if learning.known else None
    picks = k_centre(np.array([learning.vectors[item.file_id] for item in placed]), DIVERSE, seed, known)
    return spread_first(placed, picks, ordered(placed, Order.UNCERTAIN)) + rest
