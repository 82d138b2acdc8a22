"""Agreement numbers equal the kept implementations' on the same votes: scikit-learn's
cohen_kappa_score for each pair, the krippendorff package's nominal α over all."""

from __future__ import annotations

import json
import random

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from soundtag.agreement import NONE, Score, alpha, cohen_kappa, krippendorff_alpha, pairwise_kappa, with_settled
from tests.conftest import query

LABELS = ["rain", "siren", "dog", None]


def _votes(seed: int, items: int = 60, people=("ana", "bob", "cy")) -> dict:
    """Votes that mostly follow a hidden truth, each item judged by a random two or three people."""
    rng = random.Random(seed)
    votes = {}
    for item in range(items):
        truth = rng.choice(LABELS)
        judges = rng.sample(people, rng.choice([1, 2, 2, 3]))
        votes[item] = {p: truth if rng.random() < 0.75 else rng.choice(LABELS) for p in judges}
    return votes


@pytest.mark.parametrize("seed", range(5))
def test_pairwise_kappa_equals_scikit_learns(seed):
    votes = _votes(seed)
    for (a, b), score in pairwise_kappa(votes).items():
        shared = [v for v in votes.values() if a in v and b in v]
        first = [NONE if v[a] is None else v[a] for v in shared]
        second = [NONE if v[b] is None else v[b] for v in shared]
        assert score.items == len(shared)
        assert score.value == pytest.approx(cohen_kappa_score(first, second))


@pytest.mark.parametrize("seed", range(5))
def test_alpha_equals_the_krippendorff_package_overall_and_per_label(seed):
    votes = _votes(seed)
    people = sorted({p for v in votes.values() for p in v})
    codes = {label: i for i, label in enumerate(LABELS)}
    matrix = np.array([[codes[v[p]] if p in v else np.nan for v in votes.values()] for p in people], dtype=float)
    expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    assert alpha(votes).value == pytest.approx(expected)
    assert alpha(votes).items == sum(len(v) >= 2 for v in votes.values())
    siren = np.where(np.isnan(matrix), np.nan, (matrix == codes["siren"]).astype(float))
    assert alpha(votes, only="siren").value == pytest.approx(
        krippendorff.alpha(reliability_data=siren, level_of_measurement="nominal"))


def test_perfect_agreement_is_one_and_too_little_to_tell_is_none():
    assert cohen_kappa(["rain"] * 4, ["rain"] * 4) == 1.0
    assert cohen_kappa([], []) is None
    assert krippendorff_alpha([["rain", "rain"], ["dog", "dog"]]) == 1.0
    assert krippendorff_alpha([["rain"], ["dog"]]) is None  # nobody judged an item twice
    assert alpha({1: {"ana": "rain"}}) == Score(None, 0)


def test_each_reviewers_agreement_with_the_settled_labels():
    votes = {1: {"ana": "rain", "bob": "siren"}, 2: {"ana": None, "bob": None}, 3: {"ana": "dog"}}
    settled = {1: "siren", 2: None}
    assert with_settled(votes, settled) == {"ana": Score(0.5, 2), "bob": Score(1.0, 2)}


def test_soundtag_agreement_reads_each_reviewers_latest_vote_and_equals_the_kept_implementations(tmp_path,
                                                                                               database_url):
    from db.files import job_file_ids
    from db.reviews import Given, record_verdicts, undo_verdict
    from db.schema import engine_for
    from soundtag.states import Verdict
    from tests.conftest import soundtag
    from tests.test_export import _labeled

    job_id, uri = _labeled(database_url, tmp_path / "archive")
    engine = engine_for(database_url)
    ids = job_file_ids(engine, job_id, list(uri.values()))
    street, night, quiet = ids[uri["street.wav"]], ids[uri["night/street.wav"]], ids[uri["quiet.wav"]]
    window = (0.0, 1.5)
    record_verdicts(engine, {job_id: [
        Given(street, Verdict.ACCEPT, "ana", "siren"), Given(street, Verdict.CORRECT, "bob", "siren"),
        Given(night, Verdict.ACCEPT, "ana", "dog"), Given(night, Verdict.REJECT, "bob", "dog"),
        Given(quiet, Verdict.CORRECT, "ana", "rain", *window), Given(quiet, Verdict.CORRECT, "bob", "dog", *window),
        Given(quiet, Verdict.CORRECT, "cy", "rain", *window),
        Given(street, Verdict.CORRECT, "cy", "dog"),
    ]})
    record_verdicts(engine, {job_id: [Given(street, Verdict.ACCEPT, "cy", "siren")]})  # cy changes their mind
    record_verdicts(engine, {job_id: [Given(quiet, Verdict.CORRECT, "cy", "dog")]})
    undo_verdict(engine, job_id, "cy")  # ...and takes back their file verdict on quiet
    votes = {"street": {"ana": "siren", "bob": "siren", "cy": "siren"}, "night": {"ana": "dog", "bob": None},
             "quiet 0-1.5": {"ana": "rain", "bob": "dog", "cy": "rain"}}
    found = json.loads(soundtag("agreement", "--job", job_id, "--json", "--database", database_url).stdout)
    people = ["ana", "bob", "cy"]
    codes = {"siren": 0, "dog": 1, "rain": 2, None: 3}
    matrix = np.array([[codes[v[p]] if p in v else np.nan for v in votes.values()] for p in people], dtype=float)
    expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    assert found["items"] == 3 and found["alpha"] == {"value": pytest.approx(expected), "items": 3}
    pairs = {tuple(row["reviewers"]): (row["kappa"], row["items"]) for row in found["pairs"]}
    for a, b in [("ana", "bob"), ("ana", "cy"), ("bob", "cy")]:
        shared = [v for v in votes.values() if a in v and b in v]
        kappa = cohen_kappa_score([str(v[a]) for v in shared], [str(v[b]) for v in shared])
        assert pairs[(a, b)] == (pytest.approx(kappa), len(shared))
    # Settled by majority: street siren, quiet's window rain; night (1 against 1) is not settled.
    assert {row["reviewer"]: (row["agreement"], row["items"]) for row in found["settled"]} == {
        "ana": (1.0, 2), "bob": (0.5, 2), "cy": (1.0, 2)}
    # The same numbers in the agreement view, the latest run's.
    view = {(measure, label, a, b): (value, items) for measure, label, a, b, value, items in query(
        database_url, f"select measure, label, reviewer, other_reviewer, value, items from agreement "
                      f"where run_id = '{job_id}'")}
    assert view[("alpha", None, None, None)] == (pytest.approx(expected), 3)
    assert {(a, b): (pytest.approx(v), n) for (m, _, a, b), (v, n) in view.items() if m == "kappa"} == pairs
    assert {a: (v, n) for (m, _, a, _), (v, n) in view.items() if m == "settled"} == {
        "ana": (1.0, 2), "bob": (0.5, 2), "cy": (1.0, 2)}
    assert {label for (m, label, _, _) in view if m == "alpha"} == {None, "dog", "rain", "siren"}
    by_label = json.loads(soundtag("agreement", "--job", job_id, "--by", "label", "--json", "--database",
                                   database_url).stdout)
    assert [row["label"] for row in by_label["by_label"]] == ["dog", "rain", "siren"]
    table = soundtag("agreement", "--job", job_id, "--database", database_url)
    assert "ana & bob" in table.stdout and "3 items judged by 3 reviewers" in table.stderr
    # An adjudicator settles quiet's window as dog, against the two who said rain: people are held to
    # what was settled (the consensus), not to a count of votes (rain 2, dog 2 now: no majority).
    record_verdicts(engine, {job_id: [Given(quiet, Verdict.CORRECT, "lead", "dog", *window, adjudicated=True)]})
    again = json.loads(soundtag("agreement", "--job", job_id, "--json", "--database", database_url).stdout)
    assert {row["reviewer"]: (row["agreement"], row["items"]) for row in again["settled"]} == {
        "ana": (0.5, 2), "bob": (1.0, 2), "cy": (0.5, 2), "lead": (1.0, 1)}
