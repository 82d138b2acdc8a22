"""`soundtag search` over stored window embeddings, and `export-embeddings`."""

import json

import pyarrow.parquet as pq
import pytest

from tests.audio_files import write
from tests.conftest import query, soundtag

LABELS = "dog barking,rain,siren"


def _labeled(tmp_path, tiny_clap, url):
    archive = tmp_path / "archive"
    write(archive / "a.wav", seconds=3.0, freq=440.0)
    write(archive / "b.wav", seconds=3.0, freq=1760.0)
    write(archive / "long.ogg", seconds=25.0, rate=16000, freq=220.0)
    soundtag("run", str(archive), "--labels", LABELS, "--model", str(tiny_clap), "--database", url)
    return archive


def test_search_by_text_ranks_windows_as_the_labels_cosine_does(tmp_path, tiny_clap, database_url):
    _labeled(tmp_path, tiny_clap, database_url)
    # The label's prompt embeds exactly as the search text does, so the best window's cosine is
    # the best similarity segment_labels holds for that label.
    proc = soundtag("search", "This is a sound of siren.", "--json", "--limit", "4", "--model", str(tiny_clap),
                    "--database", database_url)
    hits = json.loads(proc.stdout)
    assert len(hits) == 4 and all(set(hit) == {"uri", "start_s", "end_s", "similarity"} for hit in hits)
    assert [hit["similarity"] for hit in hits] == sorted((hit["similarity"] for hit in hits), reverse=True)
    best = query(database_url, "select uri, start_s, similarity from segment_labels where label = 'siren' "
                               "order by similarity desc limit 1")[0]
    assert hits[0]["uri"] == best.uri  # windows of one steady tone may swap places within fp16's rounding
    assert hits[0]["similarity"] == pytest.approx(best.similarity, abs=2e-3)


def test_search_like_a_file_puts_that_file_first(tmp_path, tiny_clap, sqlite_url):
    archive = _labeled(tmp_path, tiny_clap, sqlite_url)
    proc = soundtag("search", "--like", str(archive / "long.ogg"), "--at", "12", "--json", "--model", str(tiny_clap),
                    "--database", sqlite_url)
    hits = json.loads(proc.stdout)
    # One steady tone: its three windows are alike, so all three lead, at cosine 1.
    assert {(hit["uri"].rsplit("/", 1)[1], hit["start_s"]) for hit in hits[:3]} == {("long.ogg", 0.0),
                                                                                   ("long.ogg", 10.0),
                                                                                   ("long.ogg", 15.0)}
    assert hits[0]["similarity"] == pytest.approx(1.0, abs=1e-3)
    assert hits[3]["similarity"] < 0.999
    assert len(hits) == 5  # every stored window: 1 + 1 + 3
    table = soundtag("search", "--like", str(archive / "b.wav"), "--model", str(tiny_clap), "--database",
                     sqlite_url).stdout
    assert "similarity" in table and "b.wav" in table.splitlines()[3]


def test_export_writes_one_row_per_window(tmp_path, tiny_clap, sqlite_url):
    _labeled(tmp_path, tiny_clap, sqlite_url)
    out = tmp_path / "vectors.parquet"
    soundtag("export-embeddings", "--out", str(out), "--model", str(tiny_clap), "--database", sqlite_url)
    table = pq.read_table(out).to_pylist()
    assert len(table) == 5 and set(table[0]) == {"uri", "start_s", "end_s", "model", "vector"}
    assert len(table[0]["vector"]) == 16 and table[0]["model"] == str(tiny_clap)
