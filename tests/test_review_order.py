"""review/order.py: the orders a reviewer can choose, on made-up items."""

import pytest

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


def test_learn_order_takes_every_cluster_once_before_any_twice_and_is_seeded():
    import numpy as np

    from review.order import Learning

    rng = np.random.default_rng(0)
    centres = np.eye(4)  # four well-separated kinds of sound, five recordings each
    vectors = {n: centres[n % 4] + 0.01 * rng.standard_normal(4) for n in range(20)}
    many = [_item(n, "dog", 0.5, 0.4, 0.1) for n in range(20)]
    first = [i.file_id for i in ordered(many, Order.LEARN, seed="s", learning=Learning(vectors))]
    assert sorted(first) == list(range(20))
    assert sorted(n % 4 for n in first[:4]) == [0, 1, 2, 3]
    assert first == [i.file_id for i in ordered(list(reversed(many)), Order.LEARN, seed="s",
                                                learning=Learning(vectors))]
    # Starting from what was reviewed: a kind already heard comes after the three not yet heard.
    after = [i.file_id for i in ordered(many, Order.LEARN, seed="s", learning=Learning(vectors, known=(centres[0],)))]
    assert sorted(n % 4 for n in after[:3]) == [1, 2, 3]


def test_learn_order_with_a_head_takes_the_items_whose_best_two_labels_are_closest_first():
    import numpy as np

    from review.order import Learning

    probabilities = {1: np.array([0.95, 0.02]), 2: np.array([0.1, 0.45]), 3: np.array([0.7, 0.2]),
                     4: np.array([0.51, 0.9])}
    vectors = {n: np.ones(3) for n in probabilities}
    result = ordered(ITEMS, Order.LEARN, learning=Learning(vectors, probabilities=probabilities))
    assert [i.file_id for i in result] == [2, 4, 3, 1]  # margins 0.35, 0.39, 0.5, 0.93
    from review.order import boundary_distance

    assert boundary_distance(np.array([0.8])) == pytest.approx(boundary_distance(np.array([0.2]))) == pytest.approx(0.6)


def test_kept_spread_picks_what_k_centre_picks_afresh_after_each_known_centre():
    import numpy as np

    from review.order import Spread, k_centre

    rng = np.random.default_rng(1)
    vectors = np.eye(6)[rng.integers(6, size=300)] + 0.3 * rng.standard_normal((300, 6))
    spread, known = Spread(vectors, 40, seed="s"), []
    # The first pick (the order shown, taken in turn), another pick, a row never picked, a vector
    # that is no row (a file reviewed outside this queue).
    for step in range(40):
        kind = step % 4
        row = (spread.picks[0], spread.picks[len(spread.picks) // 2], int(rng.integers(300)), None)[kind]
        centre = vectors[row] if row is not None else rng.standard_normal(6)
        spread.add(centre, row)
        known.append(centre)
        assert spread.picks == k_centre(vectors, 40, seed="s", known=np.array(known)), step


def test_stratified_order_is_seeded_and_takes_labels_in_turn_over_many_items():
    many = [_item(n, ("dog", "rain", "wind")[n % 3], 0.5 + n / 100, 0.4, n / 100) for n in range(30)]
    first = ordered(many, Order.STRATIFIED, seed="s")
    assert [i.decision for i in first] == ["dog", "rain", "wind"] * 10
    assert first == ordered(list(reversed(many)), Order.STRATIFIED, seed="s")
    assert first != ordered(many, Order.STRATIFIED, seed="t")


def test_k_centre_draws_its_first_pick_by_the_seed_and_takes_a_lone_row():
    import numpy as np

    from review.order import k_centre

    vectors = np.eye(6)
    firsts = {k_centre(vectors, 1, seed=f"s{n}")[0] for n in range(12)}
    assert len(firsts) > 1 and k_centre(vectors, 3, seed="s") == k_centre(vectors, 3, seed="s")
    assert k_centre(np.ones((1, 3)), 3) == [0] and k_centre(np.zeros((0, 3)), 3) == []


def test_the_learn_order_is_seeded():
    import numpy as np

    from review.order import Learning

    learning = Learning({n: np.eye(8)[n] for n in range(8)})
    many = [_item(n, "dog", 0.5, 0.4, 0.1) for n in range(8)]
    firsts = {ordered(many, Order.LEARN, seed=f"s{n}", learning=learning)[0].file_id for n in range(12)}
    assert len(firsts) > 1


def test_items_the_learn_order_cannot_place_come_as_uncertain_orders_them():
    import numpy as np

    from review.order import Learning

    uncertain = [i.file_id for i in ordered(ITEMS, Order.UNCERTAIN)]
    assert [i.file_id for i in ordered(ITEMS, Order.LEARN, learning=Learning())] == uncertain
    unscored = Learning({n: np.ones(3) for n in range(1, 5)}, probabilities={})
    assert [i.file_id for i in ordered(ITEMS, Order.LEARN, learning=unscored)] == uncertain
