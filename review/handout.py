"""Handing a team's items out without collisions: each person is handed the next items of the
order that nobody else holds or has judged, each held on a short lease renewed while they work
and returned when they go idle or leave; the overlap sample (a share of the items, spread evenly
over the order) goes to two different people, and their pairs are what agreement rests on.

One review server serves the whole team, so the holds live in its memory: a restart hands
everything out afresh, and what was judged is read back from the verdicts. Pure but for the
clock; the server calls it under its lock."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

Key = Hashable  # an item's (file id, start, end)
LEASE_S = 120.0  # a person idle this long (no page request) gives their held items back
BATCH = 20  # items handed to a person at a time: few enough that an idle person holds little


def overlap_sample(order: Sequence[Key], share: float) -> set[Key]:
    """round(share × len(order)) items spread evenly over ``order``: item i is in when the running
    count floor((i + 1) × share) steps up there, so every stretch of the order has its share."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"overlap {share}: a share from 0 to 1")
    return {key for i, key in enumerate(order) if math.floor((i + 1) * share + 1e-9) > math.floor(i * share + 1e-9)}


@dataclass
class Handout:
    """Who holds which items now. ``judges`` is read from the verdicts in force, item → people."""

    overlap: frozenset = frozenset()
    lease_s: float = LEASE_S
    clock: Callable[[], float] = time.monotonic
    _held: dict[Key, dict[str, float]] = field(default_factory=dict)  # item → person → until

    def _holders(self, key: Key, now: float) -> dict[str, float]:
        holders = {who: until for who, until in self._held.get(key, {}).items() if until > now}
        if holders:
            self._held[key] = holders
        else:
            self._held.pop(key, None)
        return holders

    def wanted(self, key: Key) -> int:
        """How many people judge this item: two in the overlap sample, else one."""
        return 2 if key in self.overlap else 1

    def next_for(self, person: str, order: Iterable[Key], judges: Mapping[Key, set[str]], count: int = 1) -> list[Key]:
        """The next ``count`` items of ``order`` for ``person``, held for them from now: those
        they already hold first, then items they have not judged whose judges and holders
        together are fewer than the item wants."""
        now = self.clock()
        handed = []
        for key in order:
            holders = self._holders(key, now)
            judged = judges.get(key, set())
            if person in judged:
                continue
            if person in holders or len(judged | set(holders)) < self.wanted(key):
                handed.append(key)
                self._held.setdefault(key, {})[person] = now + self.lease_s
                if len(handed) == count:
                    break
        return handed

    def may_judge(self, person: str, key: Key, judges: Mapping[Key, set[str]]) -> bool:
        """Whether ``person``'s verdict on ``key`` is theirs to give: they hold it, or it still
        wants a judge that nobody else holds (a verdict changed or undone is always theirs)."""
        now = self.clock()
        holders = self._holders(key, now)
        judged = judges.get(key, set())
        return person in holders or person in judged or len(judged | set(holders)) < self.wanted(key)

    def renew(self, person: str) -> None:
        """``person`` is still there: their holds run on."""
        until = self.clock() + self.lease_s
        for holders in self._held.values():
            if person in holders:
                holders[person] = until

    def release(self, person: str, keys: Iterable[Key] | None = None) -> None:
        """Give back ``person``'s holds (all of them when ``keys`` is None): they judged those, or left."""
        for key in list(self._held) if keys is None else keys:
            self._held.get(key, {}).pop(person, None)

    def held_by(self, person: str) -> int:
        now = self.clock()
        return sum(person in self._holders(key, now) for key in list(self._held))
