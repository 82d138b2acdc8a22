"""heads/training.py on window vectors whose answer is known: two clusters a line separates."""

from __future__ import annotations

import numpy as np
import pytest

from heads.training import MIN_EACH, Examples, _weights, fit

NAN = np.nan


def _examples(weak_files=2):
    """dog: files 0-4 positive (near one axis), 5-9 negative (near another), 3 windows each; rain:
    one positive file; files after 9 are said nothing about (weak negatives)."""
    rng = np.random.default_rng(0)
    files = np.repeat(np.arange(10 + weak_files), 3)
    positive = files < 5
    vectors = np.where(positive[:, None], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]) + rng.normal(0, 0.05, (len(files), 4))
    dog = np.where(files < 10, positive.astype(float), NAN)
    rain = np.where(files == 0, 1.0, NAN)
    # The base model's cosines: dog the rank-1 label on files 0-5 (5 is a zero-shot false positive).
    zero_shot = np.stack([np.where(files <= 5, 0.3, 0.1), np.full(len(files), 0.2)], axis=1)
    return Examples(vectors.astype(np.float32), files, np.stack([dog, rain], axis=1), zero_shot)


def test_verdicts_positives_and_negatives_weigh_alike_and_weak_negatives_little():
    weights = _weights(np.array([1.0, 0.0, 0.0, 0.0, NAN, NAN]), weak_weight=0.05)
    assert weights.tolist() == pytest.approx([2.0, 2 / 3, 2 / 3, 2 / 3, 0.05, 0.05])
    assert _weights(np.array([1.0, 1.0, 0.0, NAN]), weak_weight=0.2).tolist() == pytest.approx([0.75, 0.75, 1.5, 0.2])


def test_a_head_separates_what_the_verdicts_separate_and_reports_it_beside_zero_shot():
    fitted = fit(_examples(), ["dog", "rain"], folds=5)
    assert fitted.labels == ("dog",) and fitted.weights.shape == (1, 4) and fitted.bias.shape == (1,)
    assert fitted.weights.dtype == np.float32 and fitted.bias.dtype == np.float32
    dog, rain = fitted.reports
    assert (dog.label, dog.positives, dog.negatives, dog.folds, dog.left_out) == ("dog", 5, 5, 5, None)
    assert dog.head == {"precision": 1.0, "recall": 1.0, "average_precision": 1.0}
    assert dog.zero_shot["precision"] == pytest.approx(5 / 6, abs=1e-4) and dog.zero_shot["recall"] == 1.0
    examples = _examples()
    logits = examples.vectors @ fitted.weights[0] + fitted.bias[0]
    assert (logits[examples.files < 5] > 0).all() and (logits[examples.files >= 5] < 0).all()
    assert (rain.label, rain.positives, rain.negatives, rain.folds) == ("rain", 1, 0, 0)
    assert rain.left_out == f"1 positive and 0 negative files; it needs at least {MIN_EACH} of each"


def test_folds_are_no_more_than_the_files_of_the_rarer_side_and_unknown_cosines_report_no_zero_shot():
    examples = _examples()
    targets = examples.targets.copy()
    targets[examples.files >= 8, 0] = NAN  # 5 positive files, 3 negative ones
    zero_shot = examples.zero_shot.copy()
    zero_shot[examples.files == 2, 0] = NAN
    (dog, _) = fit(Examples(examples.vectors, examples.files, targets, zero_shot), ["dog", "rain"]).reports
    assert (dog.positives, dog.negatives, dog.folds, dog.zero_shot) == (5, 3, 3, {})


def test_without_cross_validation_the_head_is_fitted_and_reports_no_numbers():
    fitted = fit(_examples(), ["dog", "rain"], cross_validate=False)
    assert fitted.labels == ("dog",) and (fitted.reports[0].folds, fitted.reports[0].head) == (0, {})


def test_many_weak_negatives_are_drawn_by_the_seed():
    many = _examples(weak_files=700)  # 2,100 weak windows: more than a fit draws
    first, again = fit(many, ["dog"], cross_validate=False), fit(many, ["dog"], cross_validate=False)
    assert np.array_equal(first.weights, again.weights)
    other = fit(many, ["dog"], cross_validate=False, seed=1)
    assert not np.array_equal(first.weights, other.weights)
