"""`soundtag evaluate`: labels against the truth a dataset carries."""

from __future__ import annotations

from soundtag.evaluation import evaluate
from tests.audio_files import write
from tests.conftest import query, soundtag

TAXONOMY = ["dog", "rain", "siren"]


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
    result = evaluate(pairs, TAXONOMY, k=2)

    assert (result.files, result.top1, result.topk) == (4, 2, 3)
    assert result.accuracy == 0.5 and result.topk_accuracy == 0.75
    assert (result.missing, result.unlabeled, result.no_truth) == ({"cat": 2}, 1, 1)
    scores = {c.label: (c.support, c.predicted, c.precision, c.recall) for c in result.classes}
    assert scores == {"dog": (2, 2, 0.5, 0.5), "rain": (1, 2, 0.5, 1.0), "siren": (1, 0, None, 0.0)}
    assert result.labels == ["dog", "rain", "siren"]
    assert result.confusion == ((1, 1, 0), (0, 1, 0), (1, 0, 0))


def test_labels_neither_true_nor_predicted_are_left_out_of_the_matrix():
    result = evaluate([("rain", ["rain", "dog"]), ("rain", ["rain", "dog"])], TAXONOMY)
    assert result.labels == ["rain"] and result.confusion == ((2,),)
    assert result.accuracy == result.topk_accuracy == 1.0


def test_nothing_to_compare_scores_zero():
    result = evaluate([(None, ["dog"]), ("cat", ["dog"])], TAXONOMY)
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
    assert "left out: 1 files whose truth is no taxonomy label: cat (1)" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_without_truth_says_what_to_do(tmp_path, tiny_clap, sqlite_url):
    write(tmp_path / "clips" / "a.wav")
    proc = soundtag("run", str(tmp_path / "clips"), "--labels", "dog,rain", "--model", str(tiny_clap),
                    "--database", sqlite_url)
    job_id = proc.stderr.split("run ", 1)[1].split(":", 1)[0]
    proc = soundtag("evaluate", job_id, "--database", sqlite_url, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"job {job_id}: no file has both a result and a truth" in proc.stderr
    assert "--truth-column" in proc.stderr


def test_evaluate_unknown_job(sqlite_url):
    proc = soundtag("evaluate", "nope", "--database", sqlite_url, check=False)
    assert proc.returncode == 1 and "job nope: not found" in proc.stderr
