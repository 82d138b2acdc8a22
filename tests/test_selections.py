"""Raven selection tables and Audacity label tracks brought back with `soundtag import-reviews
--format raven|audacity` as segment verdicts by one reviewer: what `soundtag export` wrote reads
back into the same labels, a table as Raven itself saves it is understood, and a bad row anywhere
writes nothing."""

from __future__ import annotations

import csv

import pytest

from tests.conftest import query, soundtag
from tests.test_export import _labeled


def _bobs(url) -> set[tuple]:
    rows = query(url, "select uri, start_s, end_s, label from reviews where reviewer = 'bob' and current = 1")
    return {(r.uri, round(r.start_s, 3), round(r.end_s, 3), r.label) for r in rows}


def _exported(folder, fmt) -> set[tuple]:
    """(uri, start, end, label) of every region an export wrote."""
    found = set()
    for table in folder.iterdir():
        if fmt == "raven":
            for row in csv.DictReader(table.open(newline=""), delimiter="\t"):
                found.add(("file://" + row["Begin Path"], round(float(row["Begin Time (s)"]), 3),
                           round(float(row["End Time (s)"]), 3), row["Label"]))
        else:
            found.update((table.stem, round(float(s), 3), round(float(e), 3), label)
                         for s, e, label in (line.split("\t") for line in table.read_text().splitlines()))
    return found


@pytest.mark.parametrize("fmt", ["raven", "audacity"])
def test_an_export_reads_back_into_the_same_labels_as_one_reviewers_verdicts(tmp_path, sqlite_url, fmt):
    job_id, uri = _labeled(sqlite_url, tmp_path / "archive")
    out = tmp_path / fmt
    soundtag("export", "--format", fmt, "--out", str(out), "--database", sqlite_url)
    proc = soundtag("import-reviews", str(out), "--format", fmt, "--reviewer", "bob", "--database", sqlite_url)
    exported = _exported(out, fmt)
    assert len(exported) == 6  # three recordings of two windows each
    assert proc.stdout.strip() == "6 verdicts recorded, 0 already in force"
    if fmt == "audacity":  # a track is named for its recording; a repeated stem gets the file's id
        ids = {row.id: row.uri for row in query(sqlite_url, "select id, uri from file")}
        named = {int(stem.rpartition("_")[2]) for stem, *_ in exported if stem.startswith("street_")}
        first = next(u for i, u in ids.items() if u.endswith("street.wav") and i not in named)
        exported = {(ids[int(stem.rpartition("_")[2])] if "_" in stem else first if stem == "street"
                     else uri["quiet.wav"], s, e, label) for stem, s, e, label in exported}
    assert _bobs(sqlite_url) == exported
    again = soundtag("import-reviews", str(out), "--format", fmt, "--reviewer", "bob", "--database", sqlite_url)
    assert again.stdout.strip() == "0 verdicts recorded, 6 already in force"


def test_a_raven_table_as_raven_saves_it_one_region_per_selection_label_column_chosen(tmp_path, sqlite_url):
    job_id, uri = _labeled(sqlite_url, tmp_path / "archive")
    table = tmp_path / "quiet.Table.1.selections.txt"
    table.write_text(
        "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tBegin File\tSpecies\n"
        "1\tWaveform 1\t1\t0.25\t1.0\t0\t8000\tquiet.wav\train\n"
        "1\tSpectrogram 1\t1\t0.25\t1.0\t0\t8000\tquiet.wav\train\n"
        "2\tSpectrogram 1\t1\t1.5\t2.5\t0\t8000\tquiet.wav\tdog\n")
    proc = soundtag("import-reviews", str(table), "--format", "raven", "--label-column", "Species", "--reviewer",
                    "bob", "--job", job_id, "--database", sqlite_url)
    assert proc.stdout.strip() == "2 verdicts recorded, 0 already in force"
    assert _bobs(sqlite_url) == {(uri["quiet.wav"], 0.25, 1.0, "rain"), (uri["quiet.wav"], 1.5, 2.5, "dog")}


@pytest.mark.parametrize("fmt, bad, why", [
    ("raven", "nan\t1.0\tdog", "region from nan s to 1 s: start and end must be finite numbers of seconds"),
    ("raven", "2.0\t1.0\tdog", "region from 2 s to 1 s: it must start at 0 s or later and end after it starts"),
    ("raven", "1e300\tinf\tdog", "must be finite"),
    ("raven", "0.5\t1.0\towl", "label 'owl' is not in the job's taxonomy"),
    ("raven", "x\t1.0\tdog", "Begin Time (s) 'x' is not a number"),
    ("audacity", "-3\t1.0\tdog", "region from -3 s to 1 s: it must start"),
    ("audacity", "0.5\t1.0\tcat", "label 'cat'"),
    ("audacity", "2.0\t3.5\tdog", "region from 2 s to 3.5 s: it ends after the recording (3 s)"),
    ("audacity", "0.5", "not an Audacity label"),
])
def test_a_bad_row_after_good_ones_is_refused_with_its_line_and_nothing_is_written(tmp_path, sqlite_url, fmt, bad,
                                                                                   why):
    _labeled(sqlite_url, tmp_path / "archive")
    if fmt == "raven":
        path = tmp_path / "quiet.Table.1.selections.txt"
        lines = ["Begin Time (s)\tEnd Time (s)\tLabel\tBegin File", "0.0\t1.5\tdog\tquiet.wav",
                 "1.5\t3.0\train\tquiet.wav", bad + "\tquiet.wav"]
    else:
        path = tmp_path / "quiet.txt"
        lines = ["0.0\t1.5\tdog", "1.5\t3.0\train", bad]
    path.write_text("\n".join(lines) + "\n")
    proc = soundtag("import-reviews", str(path), "--format", fmt, "--reviewer", "bob", "--database", sqlite_url,
                    check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"error: {path}:{len(lines)}: ") and why in proc.stderr
    assert query(sqlite_url, "select count(*) from review")[0][0] == 0


def test_a_recording_that_is_no_file_of_the_job_writes_nothing(tmp_path, sqlite_url):
    _labeled(sqlite_url, tmp_path / "archive")
    track = tmp_path / "elsewhere.txt"
    track.write_text("0.0\t1.5\tdog\n")
    proc = soundtag("import-reviews", str(track), "--format", "audacity", "--database", sqlite_url, check=False)
    assert proc.returncode == 1
    assert "recording 'elsewhere' is no labeled file of the job" in proc.stderr
    ambiguous = tmp_path / "street.txt"  # two recordings are named street.wav
    ambiguous.write_text("0.0\t1.5\tdog\n")
    proc = soundtag("import-reviews", str(ambiguous), "--format", "audacity", "--database", sqlite_url, check=False)
    assert "recording 'street' is 2 files of the job; name it by its path (or --recording)" in proc.stderr
    assert query(sqlite_url, "select count(*) from review")[0][0] == 0
