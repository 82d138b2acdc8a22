"""soundtag/calibration.py: thresholds chosen on constructed data whose optimum is known."""

import pytest

from soundtag.calibration import calibrate, truths


def _files(rows):
    return [(truths(truth), {"dog": dog, "rain": rain}) for truth, dog, rain in rows]


ROWS = [  # truth, cosine of dog, cosine of rain
    ("dog", 0.40, 0.10), ("dog", 0.35, 0.12), ("rain", 0.33, 0.30), ("dog", 0.30, 0.05),
    ("rain", 0.25, 0.28), ("dog", 0.20, 0.02), ("dog;rain", 0.18, 0.26), ("rain", 0.10, 0.27),
]


def test_the_lowest_cosine_that_keeps_the_target_precision_is_chosen():
    dog, rain = calibrate(_files(ROWS), ["dog", "rain"], target=0.75)
    # dog at 0.30: 3 of the 4 files at or above it are dogs (0.75); at 0.25 only 3/5; at 0.18 5/7 < 0.75.
    assert (dog.threshold, dog.precision, dog.recall, dog.support) == (0.30, 0.75, pytest.approx(3 / 5), 5)
    # rain: 0.30, 0.28, 0.27, 0.26 are all rain (multi-label truth counts); 0.12 brings a dog in: 4/5 still ≥ 0.75.
    assert (rain.threshold, rain.precision, rain.recall, rain.support) == (0.12, 0.8, 1.0, 4)
    assert dog.reached and rain.reached


def test_a_label_that_cannot_reach_the_target_tags_nothing_seen_and_is_reported():
    (dog,) = calibrate(_files([("rain", 0.5, 0.1), ("dog", 0.4, 0.1)]), ["dog"], target=0.9)
    assert not dog.reached and dog.threshold > 0.5 and dog.recall == 0.0


def test_equal_cosines_pass_together():
    rows = _files([("dog", 0.3, 0.0), ("rain", 0.3, 0.0), ("dog", 0.2, 0.0)])
    (dog,) = calibrate(rows, ["dog"], target=0.6)
    assert dog.threshold == 0.2 and dog.precision == pytest.approx(2 / 3)
    (dog,) = calibrate(rows, ["dog"], target=0.9)  # 0.3 lets the rain in with the dog: 1/2
    assert not dog.reached
