"""The kept index of vectors/window_index.py, directly: its compaction, its build ahead and the
locks they share with queries, over synthetic stored embeddings (tests/test_search.py holds the
searches through it)."""

import json
import logging
import threading

import numpy as np
import pytest
from filelock import FileLock
from sqlalchemy import create_engine, delete, select, update
from sqlalchemy.exc import OperationalError

from db import embeddings, packing
from db.models import AudioEmbedding, File
from soundtag.errors import SoundtagError
from soundtag.settings import Settings
from tests.test_search import REVISION, _store
from vectors import approximate_index, window_index
from vectors.index_segment import ROW, IndexSegment, stat
from vectors.window_index import WindowIndex


@pytest.fixture
def stored(engine, database_url, tmp_path):
    settings = Settings(model="synthetic-clap", database_url=database_url, index_dir=tmp_path / "index")
    return engine, settings, WindowIndex(engine, settings.model_ref, REVISION, tmp_path / "index", 1000)


def _delete(engine, uris):
    with engine.begin() as conn:
        conn.execute(delete(File).where(File.uri.in_(uris)))


def _manifest(index):
    return json.loads((index.folder / "manifest.json").read_text())


def _merged_files(index):
    return [path.name for path in index.folder.iterdir() if path.name.startswith("merged-")]


def _returns_at_once(call):
    """``call``'s answer, from a thread given up on after 30 s: a call that waited for a lock held
    here would wait for ever, and answer nothing."""
    answer = []
    worker = threading.Thread(target=lambda: answer.append(call()), daemon=True)
    worker.start()
    worker.join(30)
    return answer


def _held(path):
    """Hold the file lock ``path`` from another thread, as another process would, until the event is set."""
    taken, release = threading.Event(), threading.Event()

    def hold():
        with FileLock(path):
            taken.set()
            release.wait(30)

    threading.Thread(target=hold, daemon=True).start()
    assert taken.wait(5)
    return release


def test_a_compaction_drops_a_wholly_masked_segment_and_rewrites_a_mostly_masked_one(stored):
    engine, settings, index = stored
    first = _store(engine, settings, [f"a{i}" for i in range(20)])
    index.synced()
    gone = _store(engine, settings, [f"b{i}" for i in range(5)], seed=1)
    index.synced()
    assert not index.compact()  # nothing masked: nothing to rewrite
    _delete(engine, first[16:])
    index.synced()
    assert not index.compact()  # a fifth of the first segment masked: kept as it is
    _delete(engine, gone)
    index.synced()
    assert index.compact()
    (kept,) = _manifest(index)["segments"]
    assert (kept["rows"], kept["masked"]) == (80, [[64, 68], [68, 72], [72, 76], [76, 80]])
    _delete(engine, first[:1])
    index.synced()
    assert index.compact()
    assert [(seg["rows"], seg["masked"]) for seg in _manifest(index)["segments"]] == [(60, [])]
    assert not index.compact()


@pytest.mark.parametrize("masked, rebuilt", [(5, True), (20, False)], ids=["mostly masked, rebuilt meanwhile",
                                                                        "wholly masked, manifest lost meanwhile"])
def test_a_compaction_over_an_index_changed_meanwhile_is_dropped(stored, monkeypatch, caplog, masked, rebuilt):
    engine, settings, index = stored
    uris = _store(engine, settings, [f"a{i}" for i in range(20)])
    index.synced()
    _delete(engine, uris[:masked])
    index.synced()

    def merge_then_change(*args, merge=window_index.merge):
        merged = merge(*args)
        (index.folder / "manifest.json").unlink()
        if rebuilt:
            index.synced()
        return merged

    monkeypatch.setattr(window_index, "merge", merge_then_change)
    with caplog.at_level(logging.INFO, logger="vectors.window_index"):
        assert not index.compact()
    assert "search index: changed during compaction; left for a later query" in caplog.messages
    assert not _merged_files(index)


def test_a_second_compaction_or_build_ahead_returns_at_once(stored):
    engine, settings, index = stored
    uris = _store(engine, settings, [f"a{i}" for i in range(260)])
    index.synced()
    _delete(engine, uris[:60])
    index.synced()
    for lock, call in (("compact.lock", index.compact), ("ahead.lock", index.prepare_approximate)):
        release = _held(index.folder / lock)
        answer = _returns_at_once(call)
        release.set()
        assert answer == [False]


def test_a_compaction_waits_for_a_query_holding_the_index(stored):
    engine, settings, index = stored
    uris = _store(engine, settings, [f"a{i}" for i in range(20)])
    index.synced()
    _delete(engine, uris[:5])
    index.synced()
    release = _held(index.folder / "lock")
    answer = []
    compaction = threading.Thread(target=lambda: answer.append(index.compact()), daemon=True)
    compaction.start()
    compaction.join(0.3)
    assert compaction.is_alive() and not _merged_files(index)
    release.set()
    compaction.join(10)
    assert answer == [True] and [seg["rows"] for seg in _manifest(index)["segments"]] == [60]


def _stopped_by_a_query_after(monkeypatch, index, module, step, call, within):
    """Run ``call`` in a thread with ``module.step`` patched so that a query takes the index's lock
    as that step returns; once it has (within ``within`` s), the thread, its answer (a list) and
    the event that lets the query go."""
    real, stepped, release = getattr(module, step), threading.Event(), []

    def then_query(*args):
        result = real(*args)
        release.append(_held(index.folder / "lock"))
        stepped.set()
        return result

    monkeypatch.setattr(module, step, then_query)
    answer = []
    thread = threading.Thread(target=lambda: answer.append(call()), daemon=True)
    thread.start()
    assert stepped.wait(within)
    thread.join(0.3)
    return thread, answer, release[0]


def test_a_compaction_waits_for_a_query_holding_the_index_before_it_commits(stored, monkeypatch):
    engine, settings, index = stored
    uris = _store(engine, settings, [f"a{i}" for i in range(20)])
    index.synced()
    _delete(engine, uris[:5])
    index.synced()
    compaction, answer, release = _stopped_by_a_query_after(monkeypatch, index, window_index, "merge",
                                                            index.compact, 10)
    assert compaction.is_alive() and [seg["rows"] for seg in _manifest(index)["segments"]] == [80]
    release.set()
    compaction.join(10)
    assert answer == [True] and [seg["rows"] for seg in _manifest(index)["segments"]] == [60]


def test_a_compaction_that_fails_leaves_the_index_and_says_why(stored, monkeypatch, caplog):
    _, _, index = stored

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(index, "compact", full)
    index._compact_quietly()
    assert f"search index: could not compact {index.folder} (No space left on device)" in caplog.messages


def test_a_damaged_approximate_index_is_named_and_rebuilt(stored, caplog):
    engine, settings, index = stored
    _store(engine, settings, [f"a{i}" for i in range(260)])
    _, (_, entry) = index.synced(approximate=True)
    path = index.folder / entry["name"]
    path.write_bytes(bytes(path.stat().st_size))
    _, (rebuilt, again) = index.synced(approximate=True)
    assert f"search index: {path} does not match its checksum; rebuilding the approximate index" in caplog.messages
    assert again["name"] != entry["name"] and rebuilt.ntotal == 1040


def test_a_query_while_the_index_is_built_ahead_says_it_answers_exactly(stored, caplog):
    engine, settings, index = stored
    _store(engine, settings, [f"a{i}" for i in range(260)])
    index.synced()
    release = _held(index.folder / "ahead.lock")
    with caplog.at_level(logging.INFO, logger="vectors.window_index"):
        _, approximate = index.synced(approximate=True)
    release.set()
    assert approximate is None
    assert "search index: the approximate index is being built; answering exactly meanwhile" in caplog.messages


def test_an_index_is_built_ahead_from_a_thousand_unmasked_windows(stored):
    engine, settings, index = stored
    uris = _store(engine, settings, [f"a{i}" for i in range(250)])
    index.synced()
    _delete(engine, uris[:1])
    assert not index.prepare_approximate()  # 996 windows, 4 more masked
    _store(engine, settings, ["b"], seed=1)
    assert index.prepare_approximate() and _manifest(index)["approximate"]["rows"] == 1000


def test_an_index_built_ahead_covering_too_little_is_trained_again_not_extended(stored):
    engine, settings, index = stored
    _store(engine, settings, [f"a{i}" for i in range(250)])
    assert index.prepare_approximate()
    _store(engine, settings, [f"b{i}" for i in range(75)], seed=1)  # 1,000 of 1,300 covered: under 4/5
    assert index.prepare_approximate()
    assert {key: _manifest(index)["approximate"][key] for key in ("rows", "trained")} == {"rows": 1300, "trained": 1300}


def test_a_build_ahead_waits_for_a_query_holding_the_index_before_it_commits(stored, monkeypatch):
    engine, settings, index = stored
    _store(engine, settings, [f"a{i}" for i in range(250)])
    ahead, answer, release = _stopped_by_a_query_after(monkeypatch, index, approximate_index, "build",
                                                       index.prepare_approximate, 30)
    assert ahead.is_alive() and _manifest(index)["approximate"] is None
    release.set()
    ahead.join(30)
    assert answer == [True] and _manifest(index)["approximate"]["rows"] == 1000


def test_the_index_folder_is_one_per_database_model_and_revision(tmp_path, monkeypatch):
    def folder(url, model="m", revision="r"):
        return WindowIndex(create_engine(url), model, revision, tmp_path).folder

    monkeypatch.chdir(tmp_path)
    # One database however its URL names it: by a relative path, with another driver or a new password.
    assert folder("sqlite:///a.db") == folder(f"sqlite:///{tmp_path}/a.db")
    assert folder("postgresql+psycopg://u:secret@h/db") == folder("postgresql://u:changed@h/db")
    postgresql = folder("postgresql://u@h/db")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # a server's database name is no path
    assert folder("postgresql://u@h/db") == postgresql
    assert len({folder(f"sqlite:///{tmp_path}/a.db"), folder(f"sqlite:///{tmp_path}/b.db"), postgresql,
                folder(f"sqlite:///{tmp_path}/a.db", model="n"), folder(f"sqlite:///{tmp_path}/a.db", revision="s")}) == 5


def _asked(monkeypatch):
    """The queries the approximate index answered (its candidates ranked), counted."""
    asked = []

    def top(*args, real=approximate_index.top):
        asked.append(1)
        return real(*args)

    monkeypatch.setattr(approximate_index, "top", top)
    return asked


def test_exact_and_approximate_queries_use_the_index_asked_for(stored, tmp_path, monkeypatch):
    engine, settings, _ = stored
    uris = _store(engine, settings, [f"a{i}" for i in range(260)])
    query = embeddings.stored_embeddings_of(engine, settings.model_ref, uris[7])[0].vectors[1]
    asked = _asked(monkeypatch)
    below = WindowIndex(engine, settings.model_ref, REVISION, tmp_path / "below", 10_000_000)
    assert below.nearest(query, 1, approximate=True)[0].stored.uri == uris[7]
    assert asked == [1] and _manifest(below)["approximate"]["rows"] == 1040
    above = WindowIndex(engine, settings.model_ref, REVISION, tmp_path / "above", 1000)
    assert above.nearest(query, 1, approximate=False)[0].stored.uri == uris[7]
    assert asked == [1] and _manifest(above)["approximate"] is None


def test_a_row_rewritten_behind_the_summary_is_asked_again_and_its_stale_window_left_out(stored, tmp_path, monkeypatch):
    engine, settings, _ = stored
    uris = _store(engine, settings, [f"a{i}" for i in range(260)])
    index = WindowIndex(engine, settings.model_ref, REVISION, tmp_path / "index", 10_000_000)
    old = embeddings.stored_embeddings_of(engine, settings.model_ref, uris[0])[0].vectors
    index.nearest(old[3], 1, approximate=True)
    # Rewritten in place with three windows, its stamp kept: only checking the hits against SQL can tell.
    vectors = np.random.default_rng(7).standard_normal((3, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with engine.begin() as conn:
        row_id = conn.execute(select(AudioEmbedding.id).join(File, File.id == AudioEmbedding.file_id)
                              .where(File.uri == uris[0])).scalar_one()
        conn.execute(update(AudioEmbedding).where(AudioEmbedding.id == row_id).values(
            vectors=packing.pack(vectors.astype(np.float16)), starts=packing.pack(np.array([0.0, 10.0, 20.0])),
            ends=packing.pack(np.array([10.0, 20.0, 30.0]))))
    asked = _asked(monkeypatch)
    hits = index.nearest(old[3], 5, approximate=True)
    # What SQL holds now ranks them; the window gone is left out, not fetched past the row's end.
    assert len(hits) >= 4 and (uris[0], 3) not in {(hit.stored.uri, hit.window) for hit in hits}
    assert all(abs(float(hit.stored.vectors[hit.window] @ old[3]) - hit.similarity) < 1e-4 for hit in hits)
    assert asked == [1, 1]  # asked again after the check, through the approximate index still


def test_a_window_deleted_during_a_query_is_left_out(stored, monkeypatch):
    engine, settings, index = stored
    uris = _store(engine, settings, [f"a{i}" for i in range(10)])
    query = embeddings.stored_embeddings_of(engine, settings.model_ref, uris[2])[0].vectors[0]
    (best,) = index.nearest(query, 1)
    assert best.stored.uri == uris[2]

    def deleted_meanwhile(*args, real=embeddings.embeddings_by_id):
        found = real(*args)
        return {row_id: row for row_id, row in found.items() if row[1].uri != uris[2]}

    monkeypatch.setattr(embeddings, "embeddings_by_id", deleted_meanwhile)
    hits = index.nearest(query, 40)
    assert len(hits) == 36 and uris[2] not in {hit.stored.uri for hit in hits}


def test_the_approximate_index_serves_past_the_threshold_of_unmasked_windows(stored, tmp_path):
    engine, settings, index = stored
    uris = _store(engine, settings, [f"a{i}" for i in range(250)])
    query = embeddings.stored_embeddings_of(engine, settings.model_ref, uris[0])[0].vectors[0]
    index.nearest(query, 1)  # 1,000 windows: not past the threshold
    assert _manifest(index)["approximate"] is None
    asked = WindowIndex(engine, settings.model_ref, REVISION, tmp_path / "asked", 10_000_000)
    asked.nearest(query, 1, approximate=True)  # asked for: from 1,000 windows on
    assert _manifest(asked)["approximate"]["rows"] == 1000
    _store(engine, settings, [f"b{i}" for i in range(10)], seed=1)
    index.nearest(query, 1, approximate=False)
    _delete(engine, uris[:20])  # 960 windows, 80 masked
    index.nearest(query, 1)
    assert _manifest(index)["approximate"] is None


def test_a_segment_touched_but_intact_is_hashed_once(stored):
    engine, settings, index = stored
    uris = _store(engine, settings, [f"a{i}" for i in range(10)])
    query = embeddings.stored_embeddings_of(engine, settings.model_ref, uris[0])[0].vectors[0]
    index.nearest(query, 1)
    (segment,) = _manifest(index)["segments"]
    path = index.folder / f"{segment['name']}.f32"
    path.write_bytes(path.read_bytes())  # a copy, a backup restored: another ctime
    assert index.nearest(query, 1)[0].stored.uri == uris[0]
    (now,) = _manifest(index)["segments"]
    assert now["name"] == segment["name"] and now["stats"][".f32"] == stat(path)


def test_a_segment_damaged_behind_its_unchanged_stats_is_found_by_the_hits_check(stored, caplog):
    engine, settings, index = stored
    uris = _store(engine, settings, [f"a{i}" for i in range(10)])
    query = embeddings.stored_embeddings_of(engine, settings.model_ref, uris[3])[0].vectors[0]
    index.nearest(query, 1)
    manifest = _manifest(index)
    path = index.folder / f"{manifest['segments'][0]['name']}.f32"
    path.write_bytes(np.fromfile(path, np.float32).reshape(40, 16)[::-1].tobytes())
    # As the disk would rot it: the stats the manifest holds still match.
    manifest["segments"][0]["stats"][".f32"] = stat(path)
    (index.folder / "manifest.json").write_text(json.dumps(manifest))
    hits = index.nearest(query, 5)
    assert f"search index: {path} does not match its checksum; rebuilding its rows" in caplog.messages
    assert len(hits) == 5 and (hits[0].stored.uri, hits[0].window) == (uris[3], 0)
    assert all(abs(float(hit.stored.vectors[hit.window] @ query) - hit.similarity) < 1e-4 for hit in hits)


def test_an_index_folder_that_cannot_be_written_is_named_with_what_to_do(stored, tmp_path):
    engine, settings, _ = stored
    (tmp_path / "a file").write_text("")
    index = WindowIndex(engine, settings.model_ref, REVISION, tmp_path / "a file" / "index")
    with pytest.raises(SoundtagError) as error:
        index.nearest(np.ones(16, np.float32) / 4, 1)
    assert str(error.value) == (f"{index.folder}: cannot keep the search index there (Not a directory); "
                                "set SOUNDTAG_INDEX_DIR to a writable folder")


def test_a_damaged_row_is_named_at_every_query_and_read_once_until_it_changes(stored, caplog):
    engine, settings, index = stored
    uris = _store(engine, settings, [f"a{i}" for i in range(10)])
    with engine.begin() as conn:  # the newest row: the summary's last id
        conn.execute(update(AudioEmbedding).where(AudioEmbedding.file_id == select(File.id).where(
            File.uri == uris[9]).scalar_subquery()).values(vectors=b"not deflated"))
    query = embeddings.stored_embeddings_of(engine, settings.model_ref, uris[0])[0].vectors[0]
    index.nearest(query, 1)
    (reason,) = index.damaged
    assert reason.startswith(f"{uris[9]}: stored embeddings unreadable") and caplog.text.count(reason) == 1
    assert f"{reason}; left out of the search index" in caplog.messages
    _store(engine, settings, ["b"], seed=1)  # new rows: appended
    index.nearest(query, 1)
    _store(engine, settings, ["a0"], seed=2)  # a row replaced: every row compared
    index.nearest(query, 1)
    assert index.damaged == [reason] and caplog.text.count(reason) == 1
    _store(engine, settings, ["a9"], seed=3)  # stored again: indexed
    assert index.nearest(query, 41) and index.damaged == []


def test_an_index_holds_its_revisions_windows_whatever_other_revisions_hold(stored):
    engine, settings, index = stored
    uris = _store(engine, settings, [f"a{i}" for i in range(10)])
    query = embeddings.stored_embeddings_of(engine, settings.model_ref, uris[2])[0].vectors[1]
    index.nearest(query, 1)
    _store(engine, settings, [f"a{i}" for i in range(5)], seed=1, revision="r2")  # the model's next revision
    _store(engine, settings, ["a9"], seed=2)  # a row of this revision replaced: every row compared
    (best,) = index.nearest(query, 1)
    assert (best.stored.uri, best.window, best.similarity) == (uris[2], 1, pytest.approx(1.0, abs=1e-3))


@pytest.mark.parametrize("written", [0, 1], ids=["before any row", "after a chunk"])
def test_a_fetch_that_fails_raises_its_own_error_and_leaves_no_partial_segment(stored, monkeypatch, written):
    engine, settings, index = stored
    _store(engine, settings, [f"a{i}" for i in range(10)])

    def failing(*args, real=embeddings.embedding_rows):
        yield from list(real(*args))[:written]
        raise OperationalError("SELECT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(embeddings, "embedding_rows", failing)
    with pytest.raises(OperationalError, match="server closed the connection"):
        index.synced()
    assert not [path.name for path in index.folder.iterdir() if path.suffix == ".tmp"]


def test_a_commit_keeps_the_locks_and_a_build_ahead_under_way_and_removes_what_is_left_over(stored):
    engine, settings, index = stored
    _store(engine, settings, [f"a{i}" for i in range(10)])
    index.synced()
    strays = ["merged-0.f32", "merged-0.rows", "ahead-0.faiss", "0.f32.tmp"]  # of a process that died
    for name in strays:
        (index.folder / name).write_bytes(b"")
    for lock, kept, gone in (("ahead.lock", "ahead-0.faiss", "merged-0.f32"),  # a build ahead under way
                             ("compact.lock", "merged-1.f32", "ahead-0.faiss")):  # a compaction under way
        (index.folder / kept).write_bytes(b"")
        release = _held(index.folder / lock)
        _store(engine, settings, [lock], seed=1)
        answer = _returns_at_once(index.synced)  # asking whether one runs waits for nothing
        release.set()
        assert len(answer) == 1
        left = {path.name for path in index.folder.iterdir()}
        assert {"lock", lock, kept} <= left and not {gone, "0.f32.tmp"} & left
    _store(engine, settings, ["c"], seed=2)
    index.synced()
    assert not {*strays, "merged-1.f32"} & {path.name for path in index.folder.iterdir()}


def test_a_manifest_missing_its_damaged_rows_is_read_as_none_damaged(stored):
    engine, settings, index = stored
    uris = _store(engine, settings, [f"a{i}" for i in range(10)])
    query = embeddings.stored_embeddings_of(engine, settings.model_ref, uris[4])[0].vectors[2]
    index.nearest(query, 1)
    manifest = _manifest(index)
    del manifest["damaged"]
    (index.folder / "manifest.json").write_text(json.dumps(manifest))
    assert index.nearest(query, 1)[0].stored.uri == uris[4] and index.damaged == []
    _store(engine, settings, ["b"], seed=1)
    assert index.nearest(query, 1)[0].stored.uri == uris[4] and index.damaged == []


def _rows(count, masked=0):
    return IndexSegment(f"{count}-{masked}", np.zeros((count, 1), np.float32), np.zeros(count, ROW), {}, {},
                        [[0, masked]] if masked else [])


def test_compaction_takes_the_mostly_masked_segments_and_past_eight_all_but_the_largest():
    def chosen(segments):
        return [seg.name for seg in window_index._to_merge(segments)]

    eight = [_rows(10 + k) for k in range(8)]
    assert chosen(eight) == [] and chosen([_rows(10, masked=2)]) == [] and chosen([_rows(10, masked=3)]) == ["10-3"]
    assert chosen([*eight, _rows(5)]) == [seg.name for seg in eight[:7]] + ["5-0"]
    # The mostly masked one and the rest but the largest: eight segments, the largest and the merged.
    assert chosen([*eight, _rows(10, masked=5)]) == ["10-5"] + [seg.name for seg in eight[:7]]
