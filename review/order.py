"""The order in which recordings are reviewed. Pure functions of the items: no I/O."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from enum import StrEnum

from db.reviews import ReviewItem


class Order(StrEnum):
    UNCERTAIN = "uncertain"  # the smallest margin between the first two scores first, then lowest cosine
    CONFIDENT = "confident"  # the reverse
    RANDOM = "random"  # shuffled by a seed: the same seed gives the same order
    STRATIFIED = "stratified"  # in turn per decided label, and within each across cosine bins


BINS = 4


def ordered(items: Sequence[ReviewItem], order: Order, seed: str = "") -> list[ReviewItem]:
    if order == Order.UNCERTAIN:
        return sorted(items, key=lambda i: (i.margin, i.similarity, i.file_id))
    if order == Order.CONFIDENT:
        return sorted(items, key=lambda i: (-i.margin, -i.similarity, i.file_id))
    if order == Order.RANDOM:
        shuffled = sorted(items, key=lambda i: i.file_id)
        random.Random(seed).shuffle(shuffled)
        return shuffled
    return _stratified(items, seed)


def _stratified(items: Sequence[ReviewItem], seed: str) -> list[ReviewItem]:
    """Round-robin over the labels, and for each label over its cosine bins (quantiles of that
    label's cosines), so the first few dozen verdicts already cover every label at every
    confidence. Within a bin the order is random (seeded)."""
    rng = random.Random(seed)
    by_label: dict[str, list[ReviewItem]] = defaultdict(list)
    for item in sorted(items, key=lambda i: i.file_id):
        by_label[item.decision or ""].append(item)
    queues: list[list[list[ReviewItem]]] = []
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda i: (i.similarity, i.file_id))
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
