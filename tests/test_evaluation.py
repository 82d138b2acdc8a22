"""`soundtag evaluate`: labels against the truth a dataset carries."""

from __future__ import annotations

import pytest

from soundtag.evaluation import at_threshold, curves, evaluate
from tests.audio_files import write
from tests.conftest import query, soundtag

TAXONOMY = ["dog", "rain", "siren"]


def _forced(pairs):
    """As a taxonomy without thresholds decides: the rank-1 label is the decision and the one tag."""
    return [(truth, ranked, ranked[0] if ranked else None, set(ranked[:1])) for truth, ranked in pairs]


def test_accuracy_top_k_and_per_class_scores():
    pairs = [
        ("dog", ["dog", "rain", "siren"]),
        ("Dog ", ["rain", "dog", "siren"]),  # truth matched whatever its case and blanks
        ("rain", ["rain", "dog", "siren"]),
        ("siren", ["dog", "rain", "siren"]),
        ("cat", ["dog", "rain", "siren"]),  # no taxonomy label: left out, not an error
        ("cat", []),
        ("rain", []),  # no result (the file failed)
        (None, ["dog", "rain", "siren"]),
    ]
    result = evaluate(_forced(pairs), TAXONOMY, k=2)

    assert (result.files, result.top1, result.topk) == (4, 2, 3)
    assert result.accuracy == 0.5 and result.topk_accuracy == 0.75
    assert (result.missing, result.unlabeled, result.no_truth) == ({"cat": 2}, 1, 1)
    scores = {c.label: (c.support, c.predicted, c.precision, c.recall) for c in result.classes}
    assert scores == {"dog": (2, 2, 0.5, 0.5), "rain": (1, 2, 0.5, 1.0), "siren": (1, 0, None, 0.0)}
    assert result.labels == ["dog", "rain", "siren"]
    assert result.confusion == ((1, 1, 0), (0, 1, 0), (1, 0, 0))
    # Without thresholds every file is decided, by its rank-1 label, which is its one tag.
    assert (result.coverage, result.covered_accuracy) == (1.0, 0.5)
    assert all((c.tagged, c.tag_correct) == (c.predicted, c.correct) for c in result.classes)


def test_coverage_accuracy_on_covered_files_and_precision_recall_at_the_thresholds():
    files = [  # truth, ranked, decision (None: abstained), tags
        ("dog", ["dog", "rain", "siren"], "dog", {"dog", "animal"}),  # a group's tag is not scored
        ("dog", ["rain", "dog", "siren"], None, set()),
        ("rain", ["rain", "dog", "siren"], "rain", {"rain", "dog"}),
        ("siren", ["dog", "siren", "rain"], "siren", {"siren"}),  # rank-1 dog failed its threshold
        ("rain", ["siren", "rain", "dog"], None, set()),
    ]
    result = evaluate(files, TAXONOMY, k=2)

    assert (result.files, result.top1, result.decided, result.decided_correct) == (5, 2, 3, 3)
    assert result.coverage == 0.6 and result.covered_accuracy == 1.0 and result.accuracy == 0.4
    at = {c.label: (c.tagged, c.tag_correct, c.tag_precision, c.tag_recall) for c in result.classes}
    assert at == {"dog": (2, 1, 0.5, 0.5), "rain": (1, 1, 1.0, 0.5), "siren": (1, 1, 1.0, 1.0)}


def test_nothing_decided_has_no_accuracy_on_covered_files():
    result = evaluate([("dog", ["dog"], None, set())], TAXONOMY)
    assert (result.coverage, result.covered_accuracy) == (0.0, None)


def test_multi_label_truth_counts_any_of_its_labels():
    files = [
        ("dog; Rain", ["rain", "siren", "dog"], "rain", {"rain", "dog"}),
        ("dog;rain", ["siren", "rain", "dog"], "siren", {"siren"}),
        ("siren;owl", ["siren", "dog", "rain"], "siren", {"siren"}),  # owl is no label: dropped
        ("owl;bat", ["dog", "rain", "siren"], "dog", {"dog"}),  # none is a label: left out
        ("dog", ["dog", "rain", "siren"], "dog", {"dog"}),
    ]
    result = evaluate(files, TAXONOMY, k=2)

    assert (result.files, result.top1, result.topk, result.decided_correct) == (4, 3, 4, 3)
    assert result.missing == {"owl;bat": 1}
    scores = {c.label: (c.support, c.correct, c.tag_precision, c.tag_recall) for c in result.classes}
    assert scores == {"dog": (3, 1, 1.0, 2 / 3), "rain": (2, 1, 1.0, 0.5), "siren": (1, 1, 0.5, 1.0)}
    # Only the files with one truth have a row to be counted in.
    assert result.single == 2
    assert result.confusion == ((1, 0, 0), (0, 0, 0), (0, 0, 1))


def test_precision_recall_curves_over_the_cosine_and_the_threshold_point():
    files = [("dog", {"dog": 0.4, "rain": 0.1}), ("rain", {"dog": 0.3, "rain": 0.2}),
             ("dog;rain", {"dog": 0.3, "rain": 0.25}), ("dog", {"dog": 0.1, "rain": 0.0}), (None, {"dog": 0.9})]
    found = curves(files, ["dog", "rain", "siren"])

    assert list(found) == ["dog", "rain"]  # siren: no truth names it
    assert [(p.threshold, p.precision, p.recall) for p in found["dog"]] == [
        (0.4, 1.0, pytest.approx(1 / 3)), (0.3, pytest.approx(2 / 3), pytest.approx(2 / 3)), (0.1, 0.75, 1.0)]
    assert at_threshold(found["dog"], 0.35).threshold == 0.4
    assert at_threshold(found["dog"], 0.3).threshold == 0.3
    assert at_threshold(found["dog"], 0.5) is None


def test_labels_neither_true_nor_predicted_are_left_out_of_the_matrix():
    result = evaluate(_forced([("rain", ["rain", "dog"]), ("rain", ["rain", "dog"])]), TAXONOMY)
    assert result.labels == ["rain"] and result.confusion == ((2,),)
    assert result.accuracy == result.topk_accuracy == 1.0


def test_nothing_to_compare_scores_zero():
    result = evaluate(_forced([(None, ["dog"]), ("cat", ["dog"])]), TAXONOMY)
    assert (result.files, result.accuracy, result.classes, result.confusion) == (0, 0.0, (), ())


def test_evaluate_reports_a_dataset_job_and_plots_its_confusion_matrix(tmp_path, tiny_clap, sqlite_url):
    from datasets import Audio, ClassLabel, Dataset

    truths = ["dog", "rain", "siren", "dog", "cat"]
    paths = [write(tmp_path / f"{i}.wav", seconds=1.0, freq=200.0 + 200 * i) for i in range(len(truths))]
    ds = Dataset.from_dict({"audio": [{"bytes": p.read_bytes(), "path": None} for p in paths],
                            "category": [["dog", "rain", "siren", "cat"].index(t) for t in truths]})
    ds = ds.cast_column("audio", Audio()).cast_column("category", ClassLabel(names=["dog", "rain", "siren", "cat"]))
    ds.to_parquet(tmp_path / "clips.parquet")
    env = {"HF_HOME": str(tmp_path / "hf")}
    proc = soundtag("run", f"hf://{tmp_path}/clips.parquet", "--truth-column", "category", "--labels", "Dog,Rain,Siren",
                    "--model", str(tiny_clap), "--database", sqlite_url, env=env)
    job_id = proc.stderr.split("run ", 1)[1].split(":", 1)[0]

    plot = tmp_path / "confusion.png"
    out = soundtag("evaluate", job_id, "--plot", str(plot), "--database", sqlite_url).stdout

    top = query(sqlite_url, "select f.truth, l.label from files f join file_labels l on l.uri = f.uri where l.rank = 1")
    right = sum(truth.lower() == label.lower() for truth, label in top if truth != "cat")
    assert f"job {job_id}: 4 files compared" in out
    assert f"accuracy {right / 4:.1%} ({right}/4), top-5 accuracy 100.0% (4/4)" in out
    assert all(name in out for name in ("class", "support", "precision", "recall", "Dog", "Rain", "Siren"))
    assert "coverage 100.0% (4/4 decided, 0 abstained)" in out  # no thresholds: the rank-1 label decides
    assert f"accuracy on covered files {right / 4:.1%} ({right}/4)" in out
    assert "left out: 1 files whose truth is no taxonomy label: cat (1)" in out
    for image in (plot, tmp_path / "confusion-pr.png"):
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_without_truth_says_what_to_do(tmp_path, tiny_clap, sqlite_url):
    write(tmp_path / "clips" / "a.wav")
    proc = soundtag("run", str(tmp_path / "clips"), "--labels", "dog,rain", "--model", str(tiny_clap),
                    "--database", sqlite_url)
    job_id = proc.stderr.split("run ", 1)[1].split(":", 1)[0]
    proc = soundtag("evaluate", "--database", sqlite_url, check=False)  # the newest job, as export takes
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"job {job_id}: no file has both a result and a truth" in proc.stderr
    # The ways out are options that exist: evaluate's own --truth, and run's --truth-column.
    assert "(--truth reviews)" in proc.stderr and "`soundtag run --truth-column COLUMN`" in proc.stderr


def test_evaluate_against_reviews_counts_files_and_windows_apart(tmp_path, tiny_clap, sqlite_url):
    from db.reviews import Given, record_verdicts
    from db.schema import engine_for
    from soundtag.states import Verdict

    for name in "abc":
        write(tmp_path / "clips" / f"{name}.wav", seconds=3.0)
    soundtag("run", str(tmp_path / "clips"), "--labels", "dog,rain", "--window", "1", "--model", str(tiny_clap),
             "--database", sqlite_url)
    (job_id,), = query(sqlite_url, "select job_id from jobs")
    ids = {uri.rsplit("/", 1)[1]: file_id for file_id, uri in query(sqlite_url, "select id, uri from file")}
    engine = engine_for(sqlite_url)
    # a: accepted whole and in its first second; b: its first second rejected; c: not reviewed.
    record_verdicts(engine, {job_id: [Given(ids["a.wav"], Verdict.CORRECT, "ana", "dog"),
                                      Given(ids["a.wav"], Verdict.CORRECT, "ana", "rain", 0.0, 1.0),
                                      Given(ids["b.wav"], Verdict.REJECT, "ana", "dog", 0.0, 1.0)]})
    engine.dispose()
    out = soundtag("evaluate", job_id, "--truth", "reviews", "--database", sqlite_url).stdout
    assert f"job {job_id}: 1 file and 1 reviewed window compared" in out
    assert "left out: 0 files without a result, 2 without truth" in out  # b and c, each once


def test_evaluate_unknown_job(sqlite_url):
    soundtag("db", "upgrade", "--database", sqlite_url)
    proc = soundtag("evaluate", "nope", "--database", sqlite_url, check=False)
    assert proc.returncode == 1 and "job nope: not found" in proc.stderr
