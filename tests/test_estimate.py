"""The stratified estimate (soundtag.estimate): a hand computation on a small sample, the
validation order's equal draw per bin, and its interval covering a known prevalence."""

import numpy as np
import pytest

from soundtag.estimate import Stratum, bins_of, edges, estimate, strata, validation_order


def test_estimate_matches_a_hand_computation():
    found = estimate([Stratum(0, False, 80, positives=1, negatives=9), Stratum(1, True, 20, positives=8, negatives=2)])
    # (80 × 1/10 + 20 × 8/10) / 100 windows; tagged: 16 of 20 hold it; 16 of the 24 holding it are tagged.
    assert found.prevalence.value == pytest.approx(0.24)
    assert found.precision.value == pytest.approx(0.8)
    assert found.recall.value == pytest.approx(16 / 24)
    assert (found.verdicts, found.windows) == (20, 100)
    for measure in (found.prevalence, found.precision, found.recall):
        assert measure.low < measure.value < measure.high


def test_a_stratum_without_verdicts_is_judged_by_its_bin():
    # The threshold splits bin 1; only its untagged side was sampled, 3 of 4 holding the label.
    found = estimate([Stratum(1, False, 10, positives=3, negatives=1), Stratum(1, True, 30)])
    assert found.prevalence.value == pytest.approx(0.75)
    assert found.precision.value == pytest.approx(0.75)


def test_strata_count_windows_and_verdicts_by_bin_and_tag():
    found = strata([0, 0, 1, 1, 1], [False, False, False, True, True], {0: False, 3: True, 4: False})
    assert found == [Stratum(0, False, 2, 0, 1), Stratum(1, False, 1, 0, 0), Stratum(1, True, 2, 1, 1)]


def test_validation_order_takes_an_equal_number_from_each_bin():
    scores = np.random.default_rng(1).random(1000)
    order = validation_order(scores.tolist(), seed="job")
    assert sorted(order) == list(range(1000))
    first = bins_of(scores[order[:40]], edges(scores))
    assert np.bincount(first, minlength=4).tolist() == [10, 10, 10, 10]
    assert order == validation_order(scores.tolist(), seed="job")


def test_interval_covers_a_known_prevalence_in_a_seeded_simulation():
    covered = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        truth = rng.random(5000) < 0.08
        scores = np.where(truth, rng.normal(0.55, 0.15, 5000), rng.normal(0.30, 0.10, 5000))
        picked = validation_order(scores.tolist(), seed=str(seed))[:80]
        found = estimate(strata(bins_of(scores, edges(scores)), scores >= 0.45, {n: bool(truth[n]) for n in picked}),
                         draws=2000, seed=seed)
        covered += found.prevalence.low <= truth.mean() <= found.prevalence.high
    assert covered >= 90
