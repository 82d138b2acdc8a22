"""The kept index of vectors/window_index.py, directly: its compaction, its build ahead and the
locks they share with queries, over synthetic stored embeddings (tests/test_search.py holds the
searches through it)."""

import json
import logging
import threading
import time

import pytest
from filelock import FileLock
from sqlalchemy import create_engine, delete

from db.models import File
from soundtag.settings import Settings
from tests.test_search import REVISION, _store
from vectors import approximate_index, window_index
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
    """``call``'s answer and how long it took, in a thread given up on after 5 s (a call that
    waits for a lock held here would wait for ever)."""
    answer, started = [], time.perf_counter()
    worker = threading.Thread(target=lambda: answer.append(call()), daemon=True)
    worker.start()
    worker.join(5)
    return answer, time.perf_counter() - started


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
    _delete(engine, gone)
    index.synced()
    assert index.compact()
    (kept,) = _manifest(index)["segments"]
    assert (kept["rows"], kept["masked"]) == (80, [])
    _delete(engine, first[:5])
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
    assert "search index: changed during compaction; left for a later query" in caplog.text
    assert not _merged_files(index)


def test_a_second_compaction_or_build_ahead_returns_at_once(stored):
    engine, settings, index = stored
    uris = _store(engine, settings, [f"a{i}" for i in range(260)])
    index.synced()
    _delete(engine, uris[:60])
    index.synced()
    for lock, call in (("compact.lock", index.compact), ("ahead.lock", index.prepare_approximate)):
        release = _held(index.folder / lock)
        answer, took = _returns_at_once(call)
        release.set()
        assert answer == [False] and took < 0.5


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


def test_a_compaction_that_fails_leaves_the_index_and_says_why(stored, monkeypatch, caplog):
    _, _, index = stored

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(index, "compact", full)
    index._compact_quietly()
    assert f"search index: could not compact {index.folder} (No space left on device)" in caplog.text


def test_a_damaged_approximate_index_is_named_and_rebuilt(stored, caplog):
    engine, settings, index = stored
    _store(engine, settings, [f"a{i}" for i in range(260)])
    _, (_, entry) = index.synced(approximate=True)
    path = index.folder / entry["name"]
    path.write_bytes(bytes(path.stat().st_size))
    _, (rebuilt, again) = index.synced(approximate=True)
    assert f"search index: {path} does not match its checksum; rebuilding the approximate index" in caplog.text
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
    assert "search index: the approximate index is being built; answering exactly meanwhile" in caplog.text


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
    built, release = threading.Event(), []

    def build_then_query(*args, build=approximate_index.build):
        entry = build(*args)
        release.append(_held(index.folder / "lock"))  # a query takes the lock as the build ends
        built.set()
        return entry

    monkeypatch.setattr(approximate_index, "build", build_then_query)
    answer = []
    ahead = threading.Thread(target=lambda: answer.append(index.prepare_approximate()), daemon=True)
    ahead.start()
    assert built.wait(30)
    ahead.join(0.3)
    assert ahead.is_alive() and _manifest(index)["approximate"] is None
    release[0].set()
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
