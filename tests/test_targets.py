"""heads/targets.py: what each verdict teaches a head, window by window."""

import numpy as np

from heads.targets import from_truth, from_verdict, implied, overlapping, window_targets
from soundtag.states import Verdict

LABELS = ["dog", "rain", "siren"]
STARTS = np.array([0.0, 10.0, 20.0, 30.0])
ENDS = STARTS + 10.0


def _targets(taught):
    return window_targets(STARTS, ENDS, taught, LABELS)


def test_accept_is_a_positive_reject_a_negative_correct_both():
    accepted = _targets(from_verdict(1, Verdict.ACCEPT, "dog"))
    assert (accepted[:, 0] == 1).all() and np.isnan(accepted[:, 1:]).all()
    rejected = _targets(from_verdict(1, Verdict.REJECT, "dog"))
    assert (rejected[:, 0] == 0).all() and np.isnan(rejected[:, 1:]).all()
    corrected = _targets(from_verdict(1, Verdict.CORRECT, "rain", shown="dog"))
    assert (corrected[:, 1] == 1).all() and (corrected[:, 0] == 0).all() and np.isnan(corrected[:, 2]).all()
    assert from_verdict(1, Verdict.REJECT, None) == []  # an abstention rejected names no label


def test_a_segment_verdict_speaks_for_the_windows_overlapping_it_only():
    segment = _targets(from_verdict(1, Verdict.ACCEPT, "siren", bounds=(12.0, 25.0)))
    assert np.isnan(segment[[0, 3], 2]).all() and (segment[[1, 2], 2] == 1).all()
    assert overlapping(STARTS, ENDS, (10.0, 20.0)).tolist() == [False, True, False, False]  # touching is not overlapping
    assert overlapping(STARTS, ENDS, None).all()


def test_a_positive_implies_negatives_that_any_explicit_verdict_overrules():
    taught = implied(from_verdict(1, Verdict.ACCEPT, "dog"), LABELS)
    targets = _targets(taught)
    assert (targets[:, 0] == 1).all() and (targets[:, 1:] == 0).all()
    # An explicit siren on a segment wins over the siren the dog implied, whatever the order.
    explicit = from_verdict(1, Verdict.ACCEPT, "siren", bounds=(0.0, 10.0))
    for order in (taught + explicit, explicit + taught):
        assert _targets(order)[:, 2].tolist() == [1.0, 0.0, 0.0, 0.0]


def test_a_windows_own_verdict_wins_over_the_files_given_later():
    window = implied(from_verdict(1, Verdict.CORRECT, "rain", shown="dog", bounds=(10.0, 20.0)), LABELS)
    whole = implied(from_verdict(1, Verdict.ACCEPT, "dog"), LABELS)
    targets = _targets(window + whole)  # oldest first: the file's accept came after the window's correction
    assert targets[1].tolist() == [0.0, 1.0, 0.0]
    assert targets[[0, 2, 3]].tolist() == [[1.0, 0.0, 0.0]] * 3


def test_truth_is_its_label_and_none_of_the_others():
    assert _targets(from_truth(1, "rain", LABELS))[0].tolist() == [0.0, 1.0, 0.0]


def test_each_verdict_teaches_exactly_its_file_label_answer_and_bounds():
    from heads.targets import Taught

    part = (5.0, 12.0)
    assert from_verdict(7, Verdict.ACCEPT, "dog", bounds=part) == [Taught(7, "dog", True, part)]
    assert from_verdict(7, Verdict.REJECT, "dog", bounds=part) == [Taught(7, "dog", False, part)]
    assert from_verdict(7, Verdict.CORRECT, "rain", shown="dog", bounds=part) == [
        Taught(7, "rain", True, part), Taught(7, "dog", False, part)]
    assert from_verdict(7, Verdict.CORRECT, "rain", bounds=part) == [Taught(7, "rain", True, part)]
    assert from_verdict(7, Verdict.CORRECT, "rain", shown="rain") == [Taught(7, "rain", True)]
    assert implied([Taught(7, "dog", True, part)], LABELS) == [
        Taught(7, "dog", True, part), Taught(7, "rain", False, part, implied=True),
        Taught(7, "siren", False, part, implied=True)]
    assert from_truth(3, "rain", LABELS) == [Taught(3, "rain", True), Taught(3, "dog", False, implied=True),
                                             Taught(3, "siren", False, implied=True)]
