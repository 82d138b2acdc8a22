"""review/order.py: the orders a reviewer can choose, on made-up items."""

from db.reviews import ReviewItem, Scored
from review.order import Order, ordered


def _item(file_id, label, first, second, cosine):
    return ReviewItem(file_id, f"file:///a/{file_id}", 1.0, label,
                      (Scored(label, first, cosine), Scored("other", second, cosine - 0.1)))


ITEMS = [_item(1, "dog", 0.9, 0.1, 0.3), _item(2, "dog", 0.5, 0.45, 0.2), _item(3, "rain", 0.6, 0.3, 0.1),
         _item(4, "rain", 0.5, 0.45, 0.05)]


def test_uncertain_first_is_smallest_margin_then_lowest_cosine():
    assert [i.file_id for i in ordered(ITEMS, Order.UNCERTAIN)] == [4, 2, 3, 1]
    assert [i.file_id for i in ordered(ITEMS, Order.CONFIDENT)] == [1, 3, 2, 4]


def test_random_order_is_stable_for_a_seed_and_differs_between_seeds():
    many = [_item(n, "dog", 0.5, 0.4, 0.1) for n in range(30)]
    first = [i.file_id for i in ordered(many, Order.RANDOM, seed="job1")]
    assert first == [i.file_id for i in ordered(list(reversed(many)), Order.RANDOM, seed="job1")]
    assert first != [i.file_id for i in ordered(many, Order.RANDOM, seed="job2")]


def test_stratified_takes_labels_in_turn_and_covers_every_item():
    result = ordered(ITEMS, Order.STRATIFIED, seed="s")
    assert sorted(i.file_id for i in result) == [1, 2, 3, 4]
    assert [i.decision for i in result] == ["dog", "rain", "dog", "rain"]
