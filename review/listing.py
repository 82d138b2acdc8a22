"""What one review page walks: the order as it stood when the page first asked, kept under a
number so that every later page of it is cut from that same order, and the page's questions
answered on it (a page, the next item without a verdict, the place of an item). Pure: the server
fills a listing from review.queue and asks it.

The learn order moves with every verdict (a reviewed pick leaves the head of the order and the
rest move up), so pages cut from two different orders would show some items twice and never
others; the page takes a new order only when it asks for one (a new head, a team's next items)."""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from db.reviews import ReviewItem

PAGE = 50  # items per answer unless the page asks for another number: the current one and those ahead
KEPT = 32  # listings kept: one per open page (and per reload); an older one is made anew when asked


@dataclass(frozen=True)
class Listing:
    """``shown`` (item id and item, in the order shown) under ``number``, made for ``owner``."""

    number: int
    owner: str
    shown: Sequence[tuple[int, ReviewItem]]

    def page(self, offset: int, limit: int) -> Sequence[tuple[int, ReviewItem]]:
        return self.shown[offset:offset + limit]

    def next_open(self, after: int, is_open: Callable[[int], bool], wrap: bool = True) -> int | None:
        """The place of the first item after place ``after`` (-1: from the first) whose id
        ``is_open`` (has no verdict yet), going round to the first unless ``wrap`` is false;
        never ``after`` itself. None when there is none."""
        size = len(self.shown)
        for step in range(1, size + 1):
            place = after + step
            if place >= size:
                if not wrap:
                    return None
                place -= size
            if place == after:
                return None
            if is_open(self.shown[place][0]):
                return place
        return None

    def place_of(self, n: int) -> int | None:
        """Where item id ``n`` is in this listing; None when it is not in it (a filtered one)."""
        return next((place for place, (m, _) in enumerate(self.shown) if m == n), None)


class Listings:
    """The ``kept`` listings last made or asked for, by number; numbers are never used twice, so
    a page holding a number that is gone is told by the new number it gets."""

    def __init__(self, kept: int = KEPT) -> None:
        self.kept = kept
        self._listings: OrderedDict[int, Listing] = OrderedDict()
        self._numbers = itertools.count(1)
        # Requests run in a thread pool: a listing made and the oldest dropped are one step.
        self._lock = threading.Lock()

    def get(self, number: int, owner: str) -> Listing | None:
        """Listing ``number`` if it is kept and was made for ``owner``."""
        with self._lock:
            found = self._listings.get(number)
            if found is None or found.owner != owner:
                return None
            self._listings.move_to_end(number)
            return found

    def make(self, shown: Sequence[tuple[int, ReviewItem]], owner: str) -> Listing:
        with self._lock:
            listing = Listing(next(self._numbers), owner, shown)
            self._listings[listing.number] = listing
            while len(self._listings) > self.kept:
                self._listings.popitem(last=False)
            return listing
