"""soundtag/calibration.py: thresholds chosen on constructed data whose optimum is known."""

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from soundtag.calibration import calibrate, curve, truths
from soundtag.taxonomy import load_taxonomy


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


def test_an_empty_truth_cell_is_no_label():
    assert truths(None) == truths("") == truths(" ; ") == frozenset()
    assert truths(" dog ;rain;") == {"dog", "rain"}


def test_only_the_last_of_equal_cosines_is_a_point_of_the_curve():
    points = curve([(0.9, True), (0.5, False), (0.5, True)])
    assert [(p.threshold, p.precision, p.recall, p.hits) for p in points] == [
        (0.9, 1.0, 0.5, 1), (0.5, pytest.approx(2 / 3), 1.0, 2)]


def test_a_curve_without_positives_has_no_recall():
    assert [(p.recall, p.hits) for p in curve([(0.4, False), (0.2, False)])] == [(None, 0), (None, 0)]


def test_truth_names_a_label_whatever_its_case():
    (dog,) = calibrate([(truths("DOG"), {"dog": 0.4}), (truths("Rain"), {"dog": 0.1})], ["dog"], target=1.0)
    assert (dog.label, dog.threshold, dog.support, dog.recall) == ("dog", 0.4, 1, 1.0)


def test_a_label_without_positives_or_cosines_is_reported_unreached_and_tags_nothing():
    never, unseen = calibrate([(truths("rain"), {"never": 0.5})], ["never", "unseen"], target=0.5)
    assert (never.label, never.reached, never.support, never.recall, never.precision) == ("never", False, 0, None, None)
    assert 0.5 < never.threshold <= 0.5 + 1e-5  # just above every cosine it was given
    assert (unseen.label, unseen.reached, unseen.support, unseen.recall) == ("unseen", False, 0, None)
    assert 0.0 < unseen.threshold <= 1e-5


def test_an_unreached_label_tags_nothing_even_a_file_at_a_cosine_of_exactly_one():
    (dog,) = calibrate([(truths("rain"), {"dog": 1.0}), (truths("dog"), {"dog": 0.2})], ["dog"], target=0.9)
    assert not dog.reached and dog.recall == 0.0
    assert not 1.0 >= dog.threshold  # the views tag a file whose cosine is >= the threshold


def test_an_unreached_threshold_above_one_is_a_threshold_the_taxonomy_reads_back(tmp_path):
    (dog,) = calibrate([(truths("rain"), {"dog": 1.0})], ["dog"], target=0.9)
    written = load_taxonomy(_written(tmp_path, "labels: [dog, rain]")).with_thresholds({"dog": dog.threshold})
    read = load_taxonomy(_written(tmp_path, yaml.safe_dump(written.document())))
    assert read.labels[0].threshold == dog.threshold > 1.0


def _written(tmp_path, text):
    path = tmp_path / "taxonomy.yaml"
    path.write_text(text)
    return path


def _labeled(draw_rows):
    return [(frozenset({"dog"} if positive else {"rain"}), {"dog": cosine}) for cosine, positive in draw_rows]


ROWS_OF_ONE_LABEL = st.lists(st.tuples(st.sampled_from([i / 20 for i in range(-4, 21)]), st.booleans()), max_size=30)


@given(ROWS_OF_ONE_LABEL, st.floats(0.05, 1.0))
def test_calibration_never_falls_below_its_target_on_the_files_it_chose_from(rows, target):
    (dog,) = calibrate(_labeled(rows), ["dog"], target=target)
    tagged = [positive for cosine, positive in rows if cosine >= dog.threshold]
    if dog.reached:
        assert sum(tagged) / len(tagged) >= target and dog.precision == sum(tagged) / len(tagged)
    else:
        assert tagged == []


@given(ROWS_OF_ONE_LABEL, st.floats(0.05, 1.0), st.floats(0.05, 1.0))
def test_a_higher_target_never_lowers_the_threshold(rows, target, higher):
    target, higher = sorted((target, higher))
    (low,) = calibrate(_labeled(rows), ["dog"], target=target)
    (high,) = calibrate(_labeled(rows), ["dog"], target=higher)
    assert high.threshold >= low.threshold
