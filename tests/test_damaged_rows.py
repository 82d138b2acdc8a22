"""One damaged `audio_embedding` row (truncated, as a torn write or a bad restore leaves it; of a
dtype no version wrote; text where bytes belong) is skipped, named and counted by every reader of
stored embeddings; everything else goes on."""

import json

import pyarrow.parquet as pq
import pytest

from db.reviews import Given, record_verdicts
from db.schema import engine_for
from soundtag.states import Verdict
from tests.audio_files import write
from tests.conftest import query, soundtag

LABELS = "dog barking,rain,siren"


def test_a_truncated_row_is_skipped_and_named_everywhere(tmp_path, tiny_clap, sqlite_url):
    archive = tmp_path / "archive"
    for name, freq in [("a.wav", 440.0), ("b.wav", 1760.0), ("c.wav", 880.0)]:
        write(archive / name, seconds=3.0, freq=freq)
    model = ("--model", str(tiny_clap), "--database", sqlite_url)
    soundtag("run", str(archive), "--labels", LABELS, *model)
    damaged = f"file://{archive}/b.wav"

    def damage():
        with engine_for(sqlite_url).begin() as conn:
            conn.exec_driver_sql("update audio_embedding set vectors = substr(vectors, 1, length(vectors) / 2) "
                                 "where file_id = (select id from file where uri = ?)", (damaged,))
        engine_for.cache_clear()

    damage()
    # A new taxonomy over the recordings reuses stored embeddings; the damaged file is read again.
    run = soundtag("run", str(archive), "--labels", "bell,horn", *model)
    assert "3 labeled, 0 failed" in run.stderr
    damage()  # the row that run stored afresh

    search = soundtag("search", "siren", "--json", *model)
    assert {hit["uri"] for hit in json.loads(search.stdout)} == {f"file://{archive}/a.wav", f"file://{archive}/c.wav"}
    assert "1 files with damaged stored embeddings" in search.stderr and f"{archive}/b.wav" in search.stderr
    again = soundtag("search", "siren", "--json", *model)  # from the kept index: still said
    assert f"{archive}/b.wav" in again.stderr

    like = soundtag("search", "--like", str(archive / "a.wav"), "--json", *model)
    assert f"file://{archive}/b.wav" not in like.stdout and f"{archive}/b.wav" in like.stderr
    refused = soundtag("search", "--like", str(archive / "b.wav"), *model, check=False)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert f"{archive}/b.wav" in refused.stderr and "unreadable" in refused.stderr

    exported = soundtag("export-embeddings", "--out", str(tmp_path / "e.parquet"), *model)
    assert set(pq.read_table(tmp_path / "e.parquet")["uri"].to_pylist()) == {
        f"file://{archive}/a.wav", f"file://{archive}/c.wav"}
    assert "1 files left out" in exported.stderr and f"{archive}/b.wav" in exported.stderr

    relabel = soundtag("relabel", "--labels", "owl,crow", *model)
    assert relabel.returncode == 0
    assert f"{archive}/b.wav" in relabel.stderr
    files = query(sqlite_url, "select f.uri, jf.status, jf.error from job_file jf join file f on f.id = jf.file_id "
                              "join job j on j.id = jf.job_id where j.kind = 'relabel' order by f.uri")
    assert [(row.uri, row.status) for row in files] == [
        (f"file://{archive}/a.wav", "done"), (damaged, "failed"), (f"file://{archive}/c.wav", "done")]
    assert "unreadable" in files[1].error


@pytest.mark.parametrize("damage", [
    "update audio_embedding set dtype = 'fp8z'",  # a dtype no version wrote
    "update audio_embedding set vectors = 'not bytes at all'",  # SQLite keeps text in a blob column
])
def test_a_row_of_unknown_dtype_or_text_for_bytes_is_skipped_and_named(tmp_path, tiny_clap, sqlite_url, damage):
    archive = tmp_path / "archive"
    for name, freq in [("a.wav", 440.0), ("b.wav", 1760.0), ("c.wav", 880.0), ("d.wav", 220.0), ("e.wav", 660.0)]:
        write(archive / name, seconds=3.0, freq=freq)
    model = ("--model", str(tiny_clap), "--database", sqlite_url)
    soundtag("run", str(archive), "--labels", LABELS, *model)
    damaged = f"file://{archive}/b.wav"
    engine = engine_for(sqlite_url)
    [(job,)] = query(sqlite_url, "select job_id from jobs")
    ids = {uri: file_id for file_id, uri in query(sqlite_url, "select id, uri from file")}
    record_verdicts(engine, {job: [Given(ids[f"file://{archive}/{name}"], Verdict.CORRECT, "ana", label)
                                   for name, label in [("a.wav", "siren"), ("b.wav", "siren"), ("c.wav", "siren"),
                                                       ("d.wav", "rain"), ("e.wav", "rain")]]})
    with engine.begin() as conn:
        conn.exec_driver_sql(damage + " where file_id = ?", (ids[damaged],))
    engine_for.cache_clear()

    search = soundtag("search", "siren", "--json", *model)
    assert damaged not in {hit["uri"] for hit in json.loads(search.stdout)}
    assert "1 files with damaged stored embeddings" in search.stderr and f"{archive}/b.wav" in search.stderr
    exported = soundtag("export-embeddings", "--out", str(tmp_path / "e.parquet"), *model)
    assert damaged not in set(pq.read_table(tmp_path / "e.parquet")["uri"].to_pylist())
    assert "1 files left out" in exported.stderr and f"{archive}/b.wav" in exported.stderr
    trained = soundtag("train", "sounds", *model)
    assert "head:sounds@v1: 2 labels" in trained.stdout
    assert "1 files with damaged stored embeddings" in trained.stderr and f"{archive}/b.wav" in trained.stderr
