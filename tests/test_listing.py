"""review.listing: the pages a review page walks are cut from one order, and the next item without
a verdict is found over the whole listing, not only the pages the page holds."""

from __future__ import annotations

from review.listing import Listing, Listings


def _listing(ids: list[int]) -> Listing:
    return Listing(1, "ana", [(n, object()) for n in ids])


def test_a_page_holds_limit_items_from_its_offset_and_none_past_the_end():
    listing = _listing(list(range(120)))
    assert [n for n, _ in listing.page(50, 50)] == list(range(50, 100))
    assert [n for n, _ in listing.page(100, 50)] == list(range(100, 120))
    assert listing.page(200, 50) == []


def test_the_next_item_without_a_verdict_goes_round_but_never_lands_on_itself():
    listing = _listing([7, 3, 9, 1, 4])  # ids in the order shown
    judged = {3, 9}
    is_open = lambda n: n not in judged  # noqa: E731
    assert listing.next_open(-1, is_open) == 0
    assert listing.next_open(0, is_open) == 3  # places 1 and 2 are judged
    assert listing.next_open(4, is_open) == 0  # round to the first
    assert listing.next_open(4, is_open, wrap=False) is None  # a team's page: up to its end
    judged |= {7, 1, 4}
    assert listing.next_open(2, is_open) is None
    judged -= {9}
    assert listing.next_open(2, is_open) is None  # only itself is open: it is not its own next


def test_an_item_is_found_by_its_id_wherever_the_order_put_it():
    listing = _listing([7, 3, 9])
    assert listing.place_of(9) == 2 and listing.place_of(5) is None


def test_listings_keep_the_latest_per_owner_and_never_reuse_a_number():
    listings = Listings(kept=2)
    first = listings.make([(0, object())], "ana")
    assert listings.get(first.number, "ana") is first
    assert listings.get(first.number, "bo") is None  # another person's listing is not theirs
    second, third = listings.make([], "ana"), listings.make([], "ana")
    assert listings.get(first.number, "ana") is None  # the oldest gave way
    assert len({first.number, second.number, third.number}) == 3
    assert listings.get(second.number, "ana") is second
