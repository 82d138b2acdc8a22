"""heads/training.py on window vectors whose answer is known: two clusters a line separates."""

from __future__ import annotations

import numpy as np
import pytest

from heads.training import MIN_EACH, Examples, _probabilities, _scores, _weights, fit

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
    assert (dog.zero_shot["precision"], dog.zero_shot["recall"]) == (0.8333, 1.0)  # 5 of 6, to 4 places
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


def test_a_heads_raw_weights_give_the_probabilities_of_the_regression_fitted_on_standardised_vectors():
    from sklearn.linear_model import LogisticRegression

    examples = _examples()
    vectors = examples.vectors.astype(np.float64) * [1.0, 1.0, 20.0, 0.01] + [0.0, 0.0, 5.0, 3.0]  # far-off axes
    target = examples.targets[:, 0]
    fitted = fit(Examples(vectors, examples.files, examples.targets, examples.zero_shot), ["dog"], cross_validate=False)
    mean, scale = vectors.mean(axis=0), vectors.std(axis=0) + 1e-6
    model = LogisticRegression(C=1.0, max_iter=500).fit((vectors - mean) / scale, np.nan_to_num(target).astype(int),
                                                          sample_weight=_weights(target, 0.05))
    expected = model.predict_proba((vectors - mean) / scale)[:, 1]
    assert _probabilities(vectors, fitted.weights[0].astype(np.float64), float(fitted.bias[0])) == pytest.approx(
        expected, rel=1e-5)


def test_a_rare_label_is_not_learned_as_never():
    """5 accepts among 200 rejects, overlapping: weighted alike, the accepts still come out above 0.5."""
    rng = np.random.default_rng(3)
    positive = np.arange(205) < 5
    vectors = (rng.normal(0, 1, (205, 2)) + np.where(positive[:, None], [1.5, 0.0], [0.0, 0.0])).astype(np.float32)
    examples = Examples(vectors, np.arange(205), positive.astype(float)[:, None], np.full((205, 1), NAN))
    fitted = fit(examples, ["dog"], cross_validate=False)
    assert _probabilities(vectors[positive], fitted.weights[0], fitted.bias[0]).mean() > 0.5


def test_probabilities_are_the_logistic_of_the_linear_score():
    assert _probabilities(np.array([[1.0, 2.0], [0.0, 0.0]]), np.array([0.5, 0.25]), -1.0) == pytest.approx(
        [0.5, 1 / (1 + np.e)])


def test_precision_and_recall_of_nothing_predicted_or_nothing_true_are_zero():
    nothing = np.array([False, False])
    assert _scores(np.array([True, False]), np.array([0.2, 0.1]), nothing)["precision"] == 0.0
    assert _scores(nothing, np.array([0.2, 0.1]), np.array([True, False]))["recall"] == 0.0


def _noise(seed=0):
    """Labels that nothing in the vectors predicts: 24 files of 2 windows, dim 40."""
    rng = np.random.default_rng(seed)
    files = np.repeat(np.arange(24), 2)
    dog = (files % 2).astype(float)
    cosines = np.stack([rng.uniform(0, 0.3, len(files)), np.full(len(files), NAN)], axis=1)  # rain: not known
    return Examples(rng.normal(0, 1, (len(files), 40)).astype(np.float32), files, np.stack([dog, dog], axis=1), cosines)


def test_cross_validation_holds_out_whole_files_and_is_seeded():
    """On noise a head that saw the files it is measured on would look perfect; held out, it is near chance."""
    (dog, _) = fit(_noise(), ["dog", "rain"], folds=4).reports
    assert dog.folds == 4 and 0.0 < dog.head["average_precision"] < 0.85 and 0.0 < dog.head["precision"] < 1.0
    assert all(value == round(value, 4) for value in dog.head.values())
    assert fit(_noise(), ["dog", "rain"], folds=4).reports[0] == dog


def test_zero_shot_is_scored_against_the_known_cosines_of_the_other_labels_only():
    """rain's cosines are unknown (NaN): dog is zero-shot's decision wherever dog has a cosine."""
    (dog, _) = fit(_noise(), ["dog", "rain"], folds=4).reports
    assert (dog.zero_shot["precision"], dog.zero_shot["recall"]) == (0.5, 1.0)


def test_a_label_needs_two_positive_and_two_negative_files_and_each_is_judged_alone():
    examples = _examples()
    dog = examples.targets[:, 0]
    one_positive = np.where(examples.files == 0, 1.0, np.where(np.isin(examples.files, [8, 9]), 0.0, NAN))[:, None]
    two_each = np.where(np.isin(examples.files, [0, 1]), 1.0, np.where(np.isin(examples.files, [5, 6]), 0.0, NAN))
    two_of_five = np.where(np.isin(examples.files, [0, 1]), 1.0, np.where(np.isin(examples.files, range(5, 10)), 0.0, NAN))
    targets = np.column_stack([one_positive[:, 0], two_each, two_of_five, dog])
    fitted = fit(Examples(examples.vectors.astype(np.float64), examples.files, targets, np.full(targets.shape, NAN)),
                 ["one", "pair", "few", "dog"])
    assert fitted.labels == ("pair", "few", "dog") and fitted.weights.dtype == np.float32
    assert [(r.label, r.positives, r.negatives, r.folds) for r in fitted.reports] == [
        ("one", 1, 2, 0), ("pair", 2, 2, 2), ("few", 2, 5, 2), ("dog", 5, 5, 5)]
