"""Items handed out to a team: nobody is handed what another holds or judged, except the overlap
sample, which goes to exactly two people; holds lapse when a person goes idle."""

from __future__ import annotations

import random

import pytest

from review.handout import Handout, overlap_sample


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.mark.parametrize("n, share", [(100, 0.1), (7, 0.5), (10, 0.0), (10, 1.0), (33, 0.25)])
def test_the_overlap_sample_is_its_share_spread_evenly_over_the_order(n, share):
    order = list(range(n))
    picked = sorted(overlap_sample(order, share))
    assert len(picked) == round(n * share + 1e-9) or len(picked) == int(n * share)
    for start in range(0, n, 10):  # every stretch of the order has its share, within one
        stretch = [i for i in picked if start <= i < start + 10]
        assert abs(len(stretch) - share * min(10, n - start)) <= 1


def test_three_people_at_once_never_share_an_item_but_the_overlap_sample():
    order = list(range(200))
    overlap = frozenset(overlap_sample(order, 0.1))
    handout, judges = Handout(overlap), {}
    people = ["ana", "bob", "cy"]
    rng = random.Random(0)
    while True:
        progressed = False
        for person in rng.sample(people, 3):
            for key in handout.next_for(person, order, judges, count=rng.choice([1, 2, 3])):
                judges.setdefault(key, set()).add(person)
                handout.release(person, [key])
                progressed = True
        if not progressed:
            break
    assert set(judges) == set(order)
    for key, who in judges.items():
        assert len(who) == (2 if key in overlap else 1), key
    assert sum(len(who) == 2 for who in judges.values()) == len(overlap) == 20


def test_a_held_item_is_not_handed_to_another_until_the_holder_goes_idle():
    clock = Clock()
    handout = Handout(lease_s=120, clock=clock)
    assert handout.next_for("ana", [1, 2], {}) == [1]
    assert handout.next_for("bob", [1, 2], {}) == [2]
    assert handout.next_for("ana", [1, 2], {}) == [1]  # still hers, asked again
    assert not handout.may_judge("bob", 1, {})
    clock.now = 100
    handout.renew("ana")
    handout.renew("bob")
    clock.now = 219.9  # renewed at 100: held until 220
    assert handout.next_for("cy", [1, 2], {}) == []
    clock.now = 220.0  # the lease's end exactly: given back
    assert handout.next_for("cy", [1, 2], {}) == [1]
    assert handout.may_judge("cy", 1, {}) and not handout.may_judge("ana", 1, {})


def test_a_person_is_never_handed_what_they_judged_and_leaving_returns_their_holds():
    handout = Handout(frozenset({1}))
    judges = {1: {"ana"}}
    assert handout.next_for("ana", [1, 2], judges) == [2]
    assert handout.next_for("bob", [1, 2], judges) == [1]  # the overlap item wants a second judge
    assert handout.next_for("cy", [1, 2], judges) == []
    handout.release("bob")
    handout.release("ana")
    assert handout.next_for("cy", [1, 2], judges, count=2) == [1, 2]
    assert handout.held_by("cy") == 2 and handout.held_by("bob") == 0
