"""Stored audio embeddings: `soundtag relabel` and a `run` with a new taxonomy score them without
the recordings, and equal a fresh labeling of the recordings."""

import re

import pytest

from db.files import scope_files
from db.schema import engine_for, ensure_schema
from soundtag.settings import Settings
from soundtag.taxonomy import taxonomy_from_csv
from tests.audio_files import write
from tests.conftest import query, soundtag
from worker import runner

LABELS = "dog barking,rain,siren"
NEW = "owl,crow,engine idling,thunder"


def _archive(root):
    write(root / "a.wav", seconds=3.0, rate=44100)
    write(root / "b.flac", seconds=2.5, rate=22050, freq=880.0)
    write(root / "long.ogg", seconds=25.0, rate=16000, freq=220.0)
    return root


def _results(url):
    files = query(url, "select uri, label, score, similarity, rank from file_labels where taxonomy like 'labels-%' "
                       "and label in ('owl', 'crow', 'engine idling', 'thunder') order by uri, label")
    segments = query(url, "select uri, start_s, end_s, label, score, similarity, rank from segment_labels "
                          "where label in ('owl', 'crow', 'engine idling', 'thunder') order by uri, start_s, label")
    return files, segments


def _assert_close(got, want, tolerance):
    assert len(got) == len(want) > 0
    for g, w in zip(got, want):
        assert g.uri == w.uri and g.label == w.label and g.rank == w.rank
        assert g.score == pytest.approx(w.score, abs=tolerance)
        assert g.similarity == pytest.approx(w.similarity, abs=tolerance)
        if hasattr(w, "start_s"):
            assert (g.start_s, g.end_s) == (w.start_s, w.end_s)


@pytest.mark.parametrize("kept, tolerance", [("fp16", 2e-3), ("fp32", 1e-5)])
def test_relabel_without_the_recordings_equals_a_fresh_run(tmp_path, tiny_clap, database_url, kept, tolerance):
    archive = _archive(tmp_path / "archive")
    env = {"SOUNDTAG_EMBEDDINGS": kept}
    soundtag("run", str(archive), "--labels", LABELS, "--model", str(tiny_clap), "--database", database_url, env=env)
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    soundtag("run", str(archive), "--labels", NEW, "--model", str(tiny_clap), "--database", fresh)
    for path in archive.iterdir():
        path.unlink()

    proc = soundtag("relabel", "--labels", NEW, "--model", str(tiny_clap), "--database", database_url)
    assert "done: 3 relabeled from stored embeddings" in proc.stderr
    # The bar's rate counts from the same start as the summary's, and ends at the last file, not after.
    bar = float(re.search(r"3/3 ([0-9.]+) files/s", proc.stderr)[1])
    assert bar >= float(re.search(r"\(([0-9.]+) files/s\) → job", proc.stderr)[1]) - 0.5
    (got_files, got_segments), (want_files, want_segments) = _results(database_url), _results(fresh)
    _assert_close(got_files, want_files, tolerance)
    _assert_close(got_segments, want_segments, tolerance)
    assert query(database_url, "select kind, state from jobs order by created_at")[-1] == ("relabel", "completed")
    assert query(database_url, "select count(*) from files where duration_s is null") == [(0,)]


def test_a_new_taxonomy_through_run_reads_no_audio(tmp_path, tiny_clap, database_url):
    archive = _archive(tmp_path / "archive")
    soundtag("run", str(archive), "--labels", LABELS, "--model", str(tiny_clap), "--database", database_url)
    for path in archive.iterdir():
        path.unlink()  # any read now fails the file

    engine = engine_for(database_url)
    ensure_schema(engine)
    settings = Settings(model=str(tiny_clap), database_url=database_url)
    info = runner.run(engine, scope_files(engine), taxonomy_from_csv(NEW), settings, sources=[str(archive)])
    engine_for.cache_clear()
    engine.dispose()
    assert (info.done, info.failed) == (3, 0)
    assert query(database_url, "select count(*) from file_labels where label = 'owl'") == [(3,)]
    assert query(database_url, "select count(*) from files where status = 'done'") == [(3,)]


def test_files_without_stored_embeddings_are_listed_with_the_command_that_keeps_them(tmp_path, tiny_clap,
                                                                                    sqlite_url):
    """No --model: the model of the stored embeddings, offline. A corrupt file is not sent to
    `run --force`: it would fail again."""
    archive = _archive(tmp_path / "archive")
    (archive / "corrupt.wav").write_bytes(b"RIFF" + b"\x00" * 64)
    soundtag("run", str(archive / "a.wav"), "--labels", LABELS, "--model", str(tiny_clap), "--database", sqlite_url,
             env={"SOUNDTAG_EMBEDDINGS": "off"})
    soundtag("run", str(archive / "b.flac"), str(archive / "corrupt.wav"), "--labels", LABELS, "--model",
             str(tiny_clap), "--database", sqlite_url)

    proc = soundtag("relabel", str(archive), "--labels", NEW, "--database", sqlite_url)
    assert "done: 1 relabeled" in proc.stderr
    assert f"1 files have no stored embeddings of model {tiny_clap}" in proc.stderr
    assert f"soundtag run PATH --force --model {tiny_clap}" in proc.stderr
    assert "no embeddings " in proc.stderr and "a.wav" in proc.stderr
    assert "1 files failed when last labeled (unreadable or corrupt): nothing to relabel" in proc.stderr
    assert [line.split()[0] for line in proc.stderr.splitlines() if "corrupt.wav" in line] == ["failed"]
    assert [r.uri.rsplit("/", 1)[1] for r in query(sqlite_url, "select uri from file_labels where label = 'owl'")] \
        == ["b.flac"]


def test_relabel_of_one_job_scores_only_its_files(tmp_path, tiny_clap, sqlite_url):
    archive = _archive(tmp_path / "archive")
    soundtag("run", str(archive / "a.wav"), "--labels", LABELS, "--model", str(tiny_clap), "--database", sqlite_url)
    soundtag("run", str(archive / "b.flac"), "--labels", LABELS, "--model", str(tiny_clap), "--database", sqlite_url)
    first = query(sqlite_url, "select job_id from jobs order by created_at")[0].job_id

    soundtag("relabel", "--labels", NEW, "--job", first, "--model", str(tiny_clap), "--database", sqlite_url)
    assert [r.uri.rsplit("/", 1)[1] for r in query(sqlite_url, "select uri from file_labels where label = 'owl'")] \
        == ["a.wav"]
