"""`soundtag export` read back by each tool's own reader, and Label Studio annotations brought back
with `soundtag import-reviews` into the `reviews` and `reviewed_labels` views."""

from __future__ import annotations

import csv
import json
from xml.etree import ElementTree

import numpy as np
import pytest

from db.files import add_files, job_file_ids
from db.jobs import create_job
from db.results import save_results
from db.reviews import record_verdict
from db.schema import engine_for, ensure_schema
from model.results import FileResult, WindowResult
from soundtag.fileref import FileRef
from soundtag.settings import Settings
from soundtag.sources.uris import file_uri
from soundtag.states import Verdict
from soundtag.taxonomy import taxonomy_from_canonical
from tests.audio_files import write
from tests.conftest import query, soundtag

NAMES = ["dog", "rain", "siren"]
# Two recordings share the stem "street"; "quiet" has low cosines and abstains under the threshold.
FILES = {  # name: scores and cosines of dog, rain, siren (file and each of its two 1.5 s windows)
    "street.wav": ([0.1, 0.2, 0.7], [0.05, 0.10, 0.40]),
    "night/street.wav": ([0.6, 0.3, 0.1], [0.35, 0.20, 0.05]),
    "quiet.wav": ([0.5, 0.3, 0.2], [0.02, 0.01, 0.00]),
}


def _labeled(url, archive, names=NAMES) -> tuple[str, dict[str, str]]:
    """A job over three real wav files, its results stored as a worker stores them; returns the
    job id and each file's URI by name."""
    engine = engine_for(url)
    ensure_schema(engine)
    taxonomy = taxonomy_from_canonical({"name": "urban", "threshold": 0.2, "labels": names})
    job = create_job(engine, taxonomy, Settings(model="m"), kind="run", sources=[str(archive)])
    results = []
    for name, (scores, cosines) in FILES.items():
        write(archive / name, seconds=3.0)
        windows = [WindowResult(s, s + 1.5, np.array(scores), np.array(cosines)) for s in (0.0, 1.5)]
        results.append(FileResult(file_uri(str(archive / name)), duration_s=3.0, sample_rate=16000, channels=1,
                                  scores=np.array(scores), similarity=np.array(cosines), segments=windows))
    add_files(engine, job, [FileRef(r.uri, fingerprint="1") for r in results])
    save_results(engine, job, results, names, logit_scale=10.0)
    engine_for.cache_clear()
    engine.dispose()
    return job, {name: r.uri for name, r in zip(FILES, results)}


@pytest.fixture
def job(tmp_path, sqlite_url):
    return (sqlite_url, *_labeled(sqlite_url, tmp_path / "archive"))


def _verdict(url, job_id, uri, verdict, label=None):
    engine = engine_for(url)
    record_verdict(engine, job_id, job_file_ids(engine, job_id, [uri])[uri], verdict, "ana", label)


def test_csv_and_parquet_have_one_row_per_file_with_decision_and_review(job, tmp_path):
    import pyarrow.parquet as pq

    url, job_id, uri = job
    _verdict(url, job_id, uri["street.wav"], Verdict.CORRECT, "rain")
    soundtag("export", "--format", "csv", "--reviewed", "--out", str(tmp_path / "f.csv"), "--database", url)
    soundtag("export", "--format", "parquet", "--out", str(tmp_path / "f.parquet"), "--database", url)
    with open(tmp_path / "f.csv", newline="") as handle:
        rows = {row["uri"]: row for row in csv.DictReader(handle)}
    assert {u: (r["label"], r["source"], r["decision"], r["verdict"]) for u, r in rows.items()} == {
        uri["street.wav"]: ("rain", "human", "siren", "correct"),
        uri["night/street.wav"]: ("dog", "model", "dog", ""),
        uri["quiet.wav"]: ("", "model", "", "")}
    final = dict(query(url, "select uri, label from reviewed_labels"))
    assert {u: r["label"] or None for u, r in rows.items()} == final
    assert float(rows[uri["street.wav"]]["similarity"]) == pytest.approx(0.40)
    table = {row["uri"]: row for row in pq.read_table(tmp_path / "f.parquet").to_pylist()}
    assert {u: (r["label"], r["source"], r["verdict"], r["reviewer"]) for u, r in table.items()} == {
        uri["street.wav"]: ("siren", "model", "correct", "ana"),  # without --reviewed: the model's decision
        uri["night/street.wav"]: ("dog", "model", None, None), uri["quiet.wav"]: (None, "model", None, None)}
    assert table[uri["quiet.wav"]]["top_label"] == "dog" and table[uri["quiet.wav"]]["score"] is None


def test_raven_and_audacity_write_one_table_per_recording(job, tmp_path):
    url, job_id, uri = job
    soundtag("export", "--format", "raven", "--out", str(tmp_path / "raven"), "--job", job_id, "--database", url)
    soundtag("export", "--format", "audacity", "--out", str(tmp_path / "aud"), "--database", url)
    tables = sorted(p.name for p in (tmp_path / "raven").iterdir())
    assert len(tables) == 3 and "street.Table.1.selections.txt" in tables and "quiet.Table.1.selections.txt" in tables
    for path in (tmp_path / "raven").iterdir():
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        assert list(rows[0])[:7] == ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)",
                                     "Low Freq (Hz)", "High Freq (Hz)"]
        assert [(r["Selection"], float(r["Begin Time (s)"]), float(r["End Time (s)"]), r["High Freq (Hz)"])
                for r in rows] == [("1", 0.0, 1.5, "8000"), ("2", 1.5, 3.0, "8000")]
        assert rows[1]["Begin Path"].endswith(".wav") and float(rows[1]["File Offset (s)"]) == 1.5
    by_path = {}
    for path in (tmp_path / "raven").iterdir():
        with open(path, newline="") as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        by_path[row["Begin Path"]] = (row["Label"], float(row["Score"]), float(row["Cosine"]))
    assert by_path[uri["night/street.wav"].removeprefix("file://")] == ("dog", pytest.approx(0.6), pytest.approx(0.35))
    tracks = sorted((tmp_path / "aud").iterdir())
    assert len(tracks) == 3
    with open(tmp_path / "aud" / "quiet.txt", newline="") as handle:
        assert [(float(s), float(e), label) for s, e, label in csv.reader(handle, delimiter="\t")] == [
            (0.0, 1.5, "dog"), (1.5, 3.0, "dog")]


def test_hf_dataset_loads_with_audio_and_the_taxonomy_as_class_labels(job, tmp_path):
    import io

    import soundfile
    from datasets import Audio, Dataset, DatasetDict, load_from_disk

    url, job_id, uri = job
    _verdict(url, job_id, uri["night/street.wav"], Verdict.REJECT)
    # A row of a dataset on disk: its audio is read through soundtag.sources.storage and embedded.
    clip = write(tmp_path / "clip.wav", seconds=1.0)
    DatasetDict(train=Dataset.from_dict({"audio": [{"bytes": clip.read_bytes(), "path": "clip.wav"}]})
                .cast_column("audio", Audio())).save_to_disk(tmp_path / "source")
    row = f"hf://{tmp_path}/source:train/0"
    engine = engine_for(url)
    add_files(engine, job_id, [FileRef(row, fingerprint="1")])
    save_results(engine, job_id, [FileResult(row, duration_s=1.0, scores=np.array([0.2, 0.7, 0.1]),
                                             similarity=np.array([0.1, 0.3, 0.0]))], NAMES, logit_scale=10.0)
    soundtag("export", "--format", "hf", "--reviewed", "--out", str(tmp_path / "ds"), "--database", url,
             env={"HF_HOME": str(tmp_path / "hf")})
    dataset = load_from_disk(str(tmp_path / "ds"))
    assert dataset.features["label"].names == NAMES
    rows = {row["uri"]: row for row in dataset.cast_column("audio", Audio(decode=False))}
    assert {u: (r["label"], r["source"]) for u, r in rows.items()} == {
        uri["street.wav"]: (2, "model"), uri["night/street.wav"]: (-1, "human"), uri["quiet.wav"]: (-1, "model"),
        row: (1, "model")}
    assert rows[uri["quiet.wav"]]["scores"] == pytest.approx([0.5, 0.3, 0.2])
    assert rows[row]["audio"]["bytes"] == clip.read_bytes()
    samples, rate = soundfile.read(io.BytesIO(rows[uri["street.wav"]]["audio"]["bytes"]))
    assert rate == 44100 and len(samples) == 3 * 44100  # the recording itself, embedded


def _annotate(tasks, uri, choice):
    """Label Studio's export of a task an annotator submitted with ``choice`` (None: chose nothing)."""
    task = next(t for t in tasks if t["data"]["uri"] == uri)
    result = [{"id": "r1", "from_name": "decision", "to_name": "audio", "type": "choices",
               "value": {"choices": [choice]}}] if choice else []
    task.setdefault("annotations", []).append({"id": len(task.get("annotations", [])) + 1, "completed_by": 7,
                                               "result": result, "was_cancelled": False})


def test_labelstudio_round_trip_records_verdicts_once(tmp_path, database_url):
    job_id, uri = _labeled(database_url, tmp_path / "archive")
    out = tmp_path / "tasks.json"
    proc = soundtag("export", "--format", "labelstudio", "--out", str(out), "--database", database_url)
    assert str(tmp_path / "tasks.xml") in proc.stderr
    view = ElementTree.parse(tmp_path / "tasks.xml").getroot()
    assert view.find("Audio").get("value") == "$audio"
    assert [lb.get("value") for lb in view.find("Labels")] == NAMES
    assert [c.get("value") for c in view.find("Choices")] == [*NAMES, "none"]
    tasks = json.loads(out.read_text())
    street = next(t for t in tasks if t["data"]["uri"] == uri["street.wav"])
    prediction = street["predictions"][0]
    assert prediction["model_version"] == "m" and prediction["score"] == pytest.approx(0.7)
    assert [(r["type"], r["from_name"], r["to_name"], r["value"]) for r in prediction["result"]] == [
        ("choices", "decision", "audio", {"choices": ["siren"]}),
        ("labels", "labels", "audio", {"start": 0.0, "end": 3.0, "channel": 0, "labels": ["siren"]})]

    _annotate(tasks, uri["street.wav"], "rain")  # changed the label
    _annotate(tasks, uri["night/street.wav"], "none")  # no label of the taxonomy: the decision is wrong
    _annotate(tasks, uri["quiet.wav"], "thunder")  # not in the taxonomy
    _annotate(tasks, uri["quiet.wav"], "none")  # then, by another annotator, agreed with the abstention
    tasks.append({"data": {"uri": "file:///elsewhere.wav", "job": job_id}, "annotations": [{"result": []}]})
    for task in tasks:
        if task["data"]["uri"] == uri["night/street.wav"]:
            del task["data"]["uri"], task["data"]["job"]  # found by its audio reference, in the newest job
    annotated = tmp_path / "export.json"
    annotated.write_text(json.dumps(tasks))
    proc = soundtag("import-reviews", str(annotated), "--database", database_url)
    assert "3 verdicts recorded" in proc.stdout and "1 tasks of no known file" in proc.stdout
    assert "1 annotations with a label not in the taxonomy" in proc.stdout
    reviews = "select uri, verdict, label, reviewer from reviews where current = 1 order by uri"
    expected = sorted([(uri["street.wav"], "correct", "rain", "label-studio:7"),
                       (uri["night/street.wav"], "reject", "dog", "label-studio:7"),
                       (uri["quiet.wav"], "accept", None, "label-studio:7")])
    assert [tuple(r) for r in query(database_url, reviews)] == expected
    final = {r.uri: (r.label, r.source) for r in query(database_url, "select uri, label, source from reviewed_labels")}
    assert final == {uri["street.wav"]: ("rain", "human"), uri["night/street.wav"]: (None, "human"),
                     uri["quiet.wav"]: (None, "human")}

    proc = soundtag("import-reviews", str(annotated), "--database", database_url)
    assert "0 verdicts recorded, 3 already in force" in proc.stdout
    assert query(database_url, "select count(*) from reviews")[0][0] == 3


def test_a_label_named_none_is_a_label_not_a_reject(tmp_path, sqlite_url):
    job_id, uri = _labeled(sqlite_url, tmp_path / "archive", names=["dog", "None", "siren"])
    out = tmp_path / "tasks.json"
    soundtag("export", "--format", "labelstudio", "--out", str(out), "--database", sqlite_url)
    view = ElementTree.parse(tmp_path / "tasks.xml").getroot()
    assert [c.get("value") for c in view.find("Choices")] == ["dog", "None", "siren", "none (no label)"]
    tasks = json.loads(out.read_text())
    quiet = next(t for t in tasks if t["data"]["uri"] == uri["quiet.wav"])  # abstained: predicted as no label
    assert quiet["predictions"][0]["result"][0]["value"] == {"choices": ["none (no label)"]}
    _annotate(tasks, uri["street.wav"], "None")
    _annotate(tasks, uri["night/street.wav"], "none (no label)")
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    soundtag("import-reviews", str(tmp_path / "export.json"), "--database", sqlite_url)
    reviews = "select uri, verdict, label from reviews where current = 1 order by uri"
    assert [tuple(r) for r in query(sqlite_url, reviews)] == sorted([
        (uri["street.wav"], "correct", "None"), (uri["night/street.wav"], "reject", "dog")])


def _two_jobs(tmp_path, url) -> tuple[list, str]:
    """A Label Studio export of two jobs' tasks, each with an annotation, and the second job's id."""
    first, uri = _labeled(url, tmp_path / "a")
    second, _ = _labeled(url, tmp_path / "b")
    tasks = []
    for job_id in (first, second):
        soundtag("export", "--format", "labelstudio", "--job", job_id, "--out", str(tmp_path / "t.json"),
                 "--database", url)
        tasks += json.loads((tmp_path / "t.json").read_text())
    for task in tasks:
        _annotate([task], task["data"]["uri"], "rain")
    return tasks, second


@pytest.mark.parametrize("damage, where", [
    (lambda task: task.update(annotations="rain"), "annotations: expected a list, not a string"),
    (lambda task: task["annotations"][0].update(result={"0": 1}),
     "annotations[0].result: expected a list, not an object"),
    (lambda task: task["annotations"][0]["result"][0]["value"].update(choices={"a": 1}),
     "annotations[0].result[0].value.choices: expected a list, not an object"),
    (lambda task: task["data"].update(uri=["file:///x.wav"]), "data.uri: expected a string, not a list"),
    (lambda task: task["data"].update(job=7), "data.job: expected a string, not a number"),
    (lambda task: task.update(data="file:///x.wav"), "data: expected an object, not a string"),
])
def test_a_damaged_export_is_refused_whole_naming_the_task_and_field(tmp_path, sqlite_url, damage, where):
    tasks, _ = _two_jobs(tmp_path, sqlite_url)
    damage(tasks[-1])  # the second job's last task; the first job's are all valid
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    proc = soundtag("import-reviews", str(tmp_path / "export.json"), "--database", sqlite_url, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: {tmp_path / 'export.json'}: task {len(tasks) - 1}: {where}"
    assert query(sqlite_url, "select count(*) from reviews")[0][0] == 0


def test_an_export_nested_too_deeply_is_one_line(tmp_path, sqlite_url):
    _labeled(sqlite_url, tmp_path / "archive")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    proc = soundtag("import-reviews", str(tmp_path / "deep.json"), "--database", sqlite_url, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: {tmp_path / 'deep.json'}: not a Label Studio JSON export (nested too deeply)"


@pytest.mark.parametrize("start, end", [
    ("NaN", 1.0), (0.5, "Infinity"), (5.0, -3.0), (2.0, 2.0), (-1.0, 1.0), (1e300, 1e301), (1.0, 3.5)])
def test_a_region_that_is_no_span_of_the_recording_is_refused_naming_its_task(tmp_path, sqlite_url, start, end):
    _, uri = _labeled(sqlite_url, tmp_path / "archive")  # recordings of 3 s
    out = tmp_path / "tasks.json"
    soundtag("export", "--format", "labelstudio", "--out", str(out), "--database", sqlite_url)
    tasks = json.loads(out.read_text())
    _annotate(tasks, tasks[0]["data"]["uri"], "rain")  # a valid verdict before the bad one: written neither
    drawn = {"from_name": "labels", "to_name": "audio", "type": "labels",
             "value": {"start": 0.0, "end": 1.0, "channel": 0, "labels": ["dog"]}}
    tasks[-1]["annotations"] = [{"id": 1, "completed_by": 7, "result": [drawn]}]
    # NaN and Infinity bare, as Python's json (and so json.loads) reads them.
    text = json.dumps(tasks).replace('"start": 0.0, "end": 1.0', f'"start": {start}, "end": {end}')
    (tmp_path / "export.json").write_text(text)
    proc = soundtag("import-reviews", str(tmp_path / "export.json"), "--database", sqlite_url, check=False)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith(f"error: {tmp_path / 'export.json'}: task {len(tasks) - 1}: ") and "region" in proc.stderr
    assert query(sqlite_url, "select count(*) from review")[0][0] == 0


def test_labelstudio_regions_import_as_segment_verdicts(tmp_path, sqlite_url):
    job_id, uri = _labeled(sqlite_url, tmp_path / "archive")
    out = tmp_path / "tasks.json"
    soundtag("export", "--format", "labelstudio", "--out", str(out), "--database", sqlite_url)
    tasks = json.loads(out.read_text())
    street = next(t for t in tasks if t["data"]["uri"] == uri["street.wav"])
    kept = next(r for r in street["predictions"][0]["result"] if r["type"] == "labels")  # siren, 0-3 s
    drawn = {"id": "new", "from_name": "labels", "to_name": "audio", "type": "labels",
             "value": {"start": 1.5, "end": 3.0, "channel": 0, "labels": ["dog"]}}
    street["annotations"] = [{"id": 1, "completed_by": 7, "was_cancelled": False, "result": [kept, drawn]}]
    annotated = tmp_path / "export.json"
    annotated.write_text(json.dumps(tasks))
    proc = soundtag("import-reviews", str(annotated), "--database", sqlite_url)
    assert "2 verdicts recorded" in proc.stdout
    rows = query(sqlite_url, "select uri, verdict, label, start_s, end_s from reviews where current = 1 order by start_s")
    assert [tuple(r) for r in rows] == [(uri["street.wav"], "accept", "siren", 0.0, 3.0),
                                        (uri["street.wav"], "correct", "dog", 1.5, 3.0)]
    final = query(sqlite_url, "select uri, start_s, end_s, label, source from reviewed_labels "
                              "where start_s is not null order by start_s")
    assert [tuple(r) for r in final] == [(uri["street.wav"], 0.0, 3.0, "siren", "human"),
                                         (uri["street.wav"], 1.5, 3.0, "dog", "human")]
    files = query(sqlite_url, "select uri, source from reviewed_labels where start_s is null")
    assert {r.source for r in files} == {"model"}  # regions alone say nothing of the whole file
    proc = soundtag("import-reviews", str(annotated), "--database", sqlite_url)
    assert "0 verdicts recorded, 2 already in force" in proc.stdout

    # export --reviewed: a window takes the label of the narrowest segment verdict around it.
    soundtag("export", "--format", "raven", "--reviewed", "--out", str(tmp_path / "raven"), "--database", sqlite_url)
    rows = [row for path in (tmp_path / "raven").iterdir()
            for row in csv.DictReader(path.open(newline=""), delimiter="\t")
            if row["Begin Path"] == uri["street.wav"].removeprefix("file://")]
    assert [(float(r["Begin Time (s)"]), r["Label"]) for r in rows] == [(0.0, "siren"), (1.5, "dog")]
    soundtag("export", "--format", "labelstudio", "--reviewed", "--out", str(tmp_path / "again.json"),
             "--database", sqlite_url)
    again = next(t for t in json.loads((tmp_path / "again.json").read_text()) if t["data"]["uri"] == uri["street.wav"])
    assert [(r["value"]["start"], r["value"]["end"], r["value"]["labels"]) for r in again["predictions"][0]["result"]
            if r["type"] == "labels"] == [(0.0, 3.0, ["siren"]), (1.5, 3.0, ["dog"])]
