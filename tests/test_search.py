"""`soundtag search` over stored window embeddings (through the kept index of
vectors/window_index.py), and `export-embeddings`."""

import json
import threading
import uuid
from datetime import timedelta

import numpy as np
import pyarrow.parquet as pq
import pytest
from sqlalchemy import delete, select, update

from db import packing
from db.embeddings import EmbeddingKey, embedding_chunks, stored_embeddings_of
from db.files import add_files
from db.jobs import create_job
from db.models import AudioEmbedding, File
from db.results import save_results
from db.schema import engine_for, ensure_schema
from model.results import FileResult, WindowResult
from soundtag.fileref import FileRef
from soundtag.settings import Settings
from soundtag.taxonomy import taxonomy_from_csv
from tests.audio_files import write
from tests.conftest import query, soundtag, wait_for
from vectors import approximate_index, window_index
from vectors.window_index import WindowIndex
from vectors.search import rank

LABELS = "dog barking,rain,siren"
REVISION = "r1"


@pytest.fixture(autouse=True)
def index_dir(tmp_path, monkeypatch):
    """Each test's search index in its own folder, for the CLI's subprocesses too."""
    monkeypatch.setenv("SOUNDTAG_INDEX_DIR", str(tmp_path / "index"))
    return tmp_path / "index"


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
    approximate = soundtag("search", "--like", str(archive / "long.ogg"), "--at", "12", "--json", "--approximate",
                           "--model", str(tiny_clap), "--database", sqlite_url)
    assert json.loads(approximate.stdout) == hits  # too few windows to approximate: compared exactly
    table = soundtag("search", "--like", str(archive / "b.wav"), "--model", str(tiny_clap), "--database",
                     sqlite_url).stdout
    assert "similarity" in table and "b.wav" in table.splitlines()[3]


def test_search_without_model_uses_the_model_of_the_stored_embeddings(tmp_path, tiny_clap, sqlite_url):
    """Offline, with no --model: the default hub model is not there, the stored vectors' is."""
    archive = _labeled(tmp_path, tiny_clap, sqlite_url)
    like = json.loads(soundtag("search", "--like", str(archive / "long.ogg"), "--json", "--database",
                               sqlite_url).stdout)
    assert like[0]["similarity"] == pytest.approx(1.0, abs=1e-3)
    text = json.loads(soundtag("search", "a siren", "--json", "--database", sqlite_url).stdout)
    assert len(text) == 5

    engine = engine_for(sqlite_url)
    with engine.begin() as conn:  # a second model's embeddings of one file
        conn.execute(update(AudioEmbedding).where(AudioEmbedding.id == 1).values(model="other/clap"))
    engine_for.cache_clear()
    engine.dispose()
    ambiguous = soundtag("search", "a siren", "--database", sqlite_url, check=False)
    assert ambiguous.returncode == 1
    assert ambiguous.stderr.strip() == (f"error: stored embeddings are by 2 models ({tiny_clap}, other/clap): "
                                        "choose one with --model")


def test_search_like_refuses_a_second_outside_the_file(tmp_path, tiny_clap, sqlite_url):
    archive = _labeled(tmp_path, tiny_clap, sqlite_url)
    for at in ("25", "999", "-5"):
        proc = soundtag("search", "--like", str(archive / "long.ogg"), f"--at={at}", "--database", sqlite_url,
                        check=False)
        assert proc.returncode == 1
        assert proc.stderr.strip() == (f"error: --at {float(at):g}: no window of {(archive / 'long.ogg').as_uri()} "
                                       "holds that second; its windows cover 0 to 25 s"), proc.stderr


def test_export_writes_one_row_per_window(tmp_path, tiny_clap, sqlite_url):
    _labeled(tmp_path, tiny_clap, sqlite_url)
    out = tmp_path / "vectors.parquet"
    soundtag("export-embeddings", "--out", str(out), "--model", str(tiny_clap), "--database", sqlite_url)
    table = pq.read_table(out).to_pylist()
    assert len(table) == 5 and set(table[0]) == {"uri", "start_s", "end_s", "model", "vector"}
    assert len(table[0]["vector"]) == 16 and table[0]["model"] == str(tiny_clap)


def _store(engine, settings, names, windows=4, seed=0, window_s=10.0, centre=lambda k: np.zeros(16), revision=REVISION):
    """Files of random unit vectors (about ``centre(k)`` for the k-th file) written as a run
    writes them; returns their uris."""
    rng = np.random.default_rng(seed)
    job = create_job(engine, taxonomy_from_csv("seed"), settings, kind="run", sources=["synthetic"])
    refs = [FileRef(f"file:///synthetic/{name}.wav", fingerprint="1") for name in names]
    add_files(engine, job, refs, force=True)
    results = []
    for k, ref in enumerate(refs):
        vectors = centre(k) + rng.standard_normal((windows, 16))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        segments = [WindowResult(window_s * w, window_s * (w + 1), np.ones(1), np.zeros(1), v) for w, v in enumerate(vectors)]
        results.append(FileResult(ref.uri, duration_s=10.0 * windows, scores=np.ones(1), similarity=np.zeros(1),
                                  segments=segments))
    save_results(engine, job, results, ["seed"], EmbeddingKey(revision, window_s, window_s, "fp16"),
                 logit_scale=1.0)
    return [ref.uri for ref in refs]


def _scanned(engine, settings, query_vector, limit):
    """What reading every stored vector from SQL answers: (uri, start_s, cosine), best first."""
    found = [(stored.uri, float(start), float(vector @ query_vector))
             for files in embedding_chunks(engine, settings.model_ref, REVISION) for stored in files
             for start, vector in zip(stored.starts, stored.vectors)]
    return sorted(found, key=lambda hit: -hit[2])[:limit]


def _queries(engine, settings, like):
    """A few random unit vectors, and the first window of each file of ``like``."""
    for seed in range(3):
        query_vector = np.random.default_rng(100 + seed).standard_normal(16).astype(np.float32)
        yield query_vector / np.linalg.norm(query_vector)
    for uri in like:
        yield stored_embeddings_of(engine, settings.model_ref, uri)[0].vectors[0]


def _check(engine, settings, limit=1000, like=()):
    """The index answers, for a few queries, exactly what the scan answers."""
    for query_vector in _queries(engine, settings, like):
        hits = [(hit.uri, hit.start_s, hit.similarity) for hit in rank(engine, settings, REVISION, query_vector, limit)]
        expected = _scanned(engine, settings, query_vector, limit)
        assert [hit[:2] for hit in hits] == [hit[:2] for hit in expected]
        assert [hit[2] for hit in hits] == pytest.approx([hit[2] for hit in expected], abs=1e-6)
    _settled()


def _settled():
    """Wait for the compactions the queries started in the background."""
    for thread in threading.enumerate():
        if thread.name == window_index.COMPACTION_THREAD:
            thread.join()


@pytest.fixture
def synthetic(database_url, index_dir):
    settings = Settings(model="synthetic-clap", database_url=database_url, index_dir=index_dir)
    engine = engine_for(database_url)
    ensure_schema(engine)
    return engine, settings


def test_index_follows_new_replaced_and_changed_files(synthetic):
    engine, settings = synthetic
    names = [f"a{i}" for i in range(30)]
    first = _store(engine, settings, names)
    _check(engine, settings)
    added = _store(engine, settings, [f"b{i}" for i in range(10)], seed=1)  # newly labeled files
    _check(engine, settings, limit=3, like=added[:2])
    _check(engine, settings)
    _store(engine, settings, names[:5], seed=2, windows=3)  # the same files labeled again (--force)
    # Few hits, each a replaced file's own window: only their new vectors can answer.
    _check(engine, settings, limit=3, like=first[:2])
    _check(engine, settings)
    # Labeled again with other windows: a search sees only a file's latest windows, as relabel does.
    _store(engine, settings, names[10:12], seed=3, window_s=5.0)
    _check(engine, settings, limit=3, like=first[10:12])
    _check(engine, settings)
    # A file changed on disk: its stored windows no longer describe it and must not be found.
    job = create_job(engine, taxonomy_from_csv("seed"), settings, kind="run", sources=["synthetic"])
    add_files(engine, job, [FileRef(uri, fingerprint="2") for uri in first[5:10]])
    _check(engine, settings)


def _manifest(index_dir):
    (folder,) = index_dir.iterdir()
    return folder, json.loads((folder / "manifest.json").read_text())


def _files(folder, segment):
    """What shows a segment's files were not rewritten: their inode and ctime."""
    return [((folder / f"{segment['name']}{ext}").stat().st_ino, (folder / f"{segment['name']}{ext}").stat().st_ctime_ns)
            for ext in (".f32", ".rows")]


def test_a_relabeled_file_is_masked_and_appended_not_rebuilt(synthetic, index_dir):
    engine, settings = synthetic
    names = [f"a{i}" for i in range(40)]
    uris = _store(engine, settings, names)
    _check(engine, settings)
    folder, before = _manifest(index_dir)
    (base,) = before["segments"]
    untouched = _files(folder, base)
    _store(engine, settings, names[:1], seed=5)  # `run --force` of one file rewrites its row
    _check(engine, settings, limit=3, like=uris[:1])
    _check(engine, settings)
    _, after = _manifest(index_dir)
    # The first segment is kept, its file's old rows masked; the new ones are a segment of their own.
    assert [seg["name"] for seg in after["segments"]] == [base["name"], after["segments"][1]["name"]]
    assert after["segments"][0]["masked"] == [[0, 4]] and after["segments"][1]["rows"] == 4
    assert _files(folder, base) == untouched
    _store(engine, settings, [f"b{i}" for i in range(3)], seed=6)  # newly labeled files: appended
    _check(engine, settings)
    _, appended = _manifest(index_dir)
    assert len(appended["segments"]) == 3 and _files(folder, base) == untouched


def test_deleted_files_are_masked_and_a_mostly_masked_segment_is_compacted(synthetic, index_dir):
    engine, settings = synthetic
    names = [f"a{i}" for i in range(20)]
    uris = _store(engine, settings, names)
    _check(engine, settings)
    with engine.begin() as conn:
        conn.execute(delete(File).where(File.uri.in_(uris[:2])))
    _check(engine, settings)
    folder, masked = _manifest(index_dir)
    assert [seg["masked"] for seg in masked["segments"]] == [[[0, 4], [4, 8]]]  # 10%: kept as it is
    with engine.begin() as conn:
        conn.execute(delete(File).where(File.uri.in_(uris[2:5])))
    _check(engine, settings)
    _, compacted = _manifest(index_dir)
    # 25% masked: rewritten without those rows.
    assert [(seg["rows"], seg["masked"]) for seg in compacted["segments"]] == [(60, [])]
    assert not (folder / f"{masked['segments'][0]['name']}.f32").exists()
    for _ in range(window_index.MAX_SEGMENTS + 1):
        _store(engine, settings, [uuid.uuid4().hex], seed=len(names))
        _check(engine, settings, limit=5)
    _, merged = _manifest(index_dir)
    assert len(merged["segments"]) <= window_index.MAX_SEGMENTS
    _check(engine, settings)


def test_a_query_answers_before_its_compaction_which_yields_to_a_newer_mask(synthetic, index_dir, monkeypatch):
    engine, settings = synthetic
    uris = _store(engine, settings, [f"a{i}" for i in range(20)])
    _check(engine, settings)
    merging, release, held = threading.Event(), threading.Event(), []

    def held_merge(*args, merge=window_index.merge):
        merged = merge(*args)  # written, not yet in the manifest
        if not held:  # the first compaction only
            held.append(merged.name)
            merging.set()
            assert release.wait(30), "the query waited for its compaction"
        return merged

    monkeypatch.setattr(window_index, "merge", held_merge)
    with engine.begin() as conn:
        conn.execute(delete(File).where(File.uri.in_(uris[:5])))
    query_vector = stored_embeddings_of(engine, settings.model_ref, uris[9])[0].vectors[0]
    # 25% of the segment masked: this query answers while the compaction it started is held.
    assert rank(engine, settings, REVISION, query_vector, 1)[0].uri == uris[9]
    assert merging.wait(10)
    folder, during = _manifest(index_dir)
    (masked,) = during["segments"]
    assert len(masked["masked"]) == 5
    # Meanwhile another file goes: the query masks it, and spares the compaction's files.
    with engine.begin() as conn:
        conn.execute(delete(File).where(File.uri == uris[5]))
    assert uris[5] not in {hit.uri for hit in rank(engine, settings, REVISION, query_vector, 100)}
    assert any(path.name.startswith("merged-") for path in folder.iterdir())
    release.set()
    _settled()
    # Its merged rows would bring uris[5] back: dropped. (The second query's compaction, if it
    # found the lock free by then, merged the segment as it is now.)
    _, after = _manifest(index_dir)
    assert held[0] not in {seg["name"] for seg in after["segments"]}
    assert not any(path.name.startswith(held[0]) for path in folder.iterdir())
    _check(engine, settings)
    _, compacted = _manifest(index_dir)
    assert [(seg["rows"], seg["masked"]) for seg in compacted["segments"]] == [(56, [])]
    assert {path.name for path in folder.iterdir()} == {"lock", "compact.lock", "manifest.json"} | {
        f"{compacted['segments'][0]['name']}{ext}" for ext in (".f32", ".rows")}


@pytest.mark.parametrize("damage", [0.0, np.nan])
def test_a_segment_of_the_right_size_but_damaged_is_found_and_rebuilt(synthetic, index_dir, damage):
    engine, settings = synthetic
    _store(engine, settings, [f"a{i}" for i in range(20)])
    _check(engine, settings)
    _store(engine, settings, [f"b{i}" for i in range(20)], seed=1)
    _check(engine, settings)
    folder, manifest = _manifest(index_dir)
    first, second = manifest["segments"]
    untouched = _files(folder, first)
    vectors = folder / f"{second['name']}.f32"
    vectors.write_bytes(np.full(vectors.stat().st_size // 4, damage, np.float32).tobytes())
    _check(engine, settings)
    _, rebuilt = _manifest(index_dir)
    assert rebuilt["segments"][0]["name"] == first["name"] and _files(folder, first) == untouched
    assert second["name"] not in {seg["name"] for seg in rebuilt["segments"]}
    (folder / "manifest.json").write_text("{not json")
    _check(engine, settings)
    with open(folder / f"{_manifest(index_dir)[1]['segments'][0]['name']}.rows", "r+b") as f:
        f.truncate(100)
    _check(engine, settings)


@pytest.mark.parametrize("wrong", [
    lambda m: m["segments"][0].update(masked="x"), lambda m: m["segments"][0].update(masked=[[0, "4"]]),
    lambda m: m["segments"][0].update(masked=[[0, 10**9]]), lambda m: m["segments"][0].update(rows="x"),
    lambda m: m["segments"][0].update(stats=[]), lambda m: m.update(dim="x"), lambda m: m.update(empty="x"),
    lambda m: m.update(segments={"a": 1}), lambda m: m.update(state=[]),
], ids=["masked a string", "masked bound a string", "masked past the rows", "rows a string", "stats a list",
        "dim a string", "empty a string", "segments a mapping", "state a list"])
def test_a_manifest_with_a_value_of_the_wrong_type_is_rebuilt_and_search_answers_right(synthetic, index_dir, wrong):
    engine, settings = synthetic
    uris = _store(engine, settings, [f"a{i}" for i in range(20)])
    _check(engine, settings)
    folder, manifest = _manifest(index_dir)
    wrong(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    _check(engine, settings, limit=3, like=uris[:2])
    _check(engine, settings)


def test_a_damaged_stored_row_is_named_and_left_out(synthetic, index_dir, caplog):
    engine, settings = synthetic
    uris = _store(engine, settings, [f"a{i}" for i in range(10)])
    with engine.begin() as conn:
        conn.execute(update(AudioEmbedding).where(AudioEmbedding.file_id == select(File.id).where(
            File.uri == uris[3]).scalar_subquery()).values(vectors=b"not deflated"))
    query_vector = stored_embeddings_of(engine, settings.model_ref, uris[0])[0].vectors[0]
    damaged = []
    hits = rank(engine, settings, REVISION, query_vector, 100, damaged.append)
    assert len(hits) == 36 and uris[3] not in {hit.uri for hit in hits}
    assert len(damaged) == 1 and damaged[0].startswith(f"{uris[3]}: stored embeddings unreadable")
    assert damaged[0] in caplog.text and len(_manifest(index_dir)[1]["empty"]) == 1
    _store(engine, settings, ["a3"], seed=4)  # stored again: indexed
    _check(engine, settings)


def test_a_row_replaced_behind_the_summary_is_never_returned_stale(synthetic):
    engine, settings = synthetic
    uris = _store(engine, settings, [f"a{i}" for i in range(10)])
    _check(engine, settings)
    # A writer whose clock runs behind replaces one file's vectors: ids, count and newest stamp
    # are unchanged, so only checking the hits against SQL can notice.
    with engine.begin() as conn:
        row_id, stamp = conn.execute(select(AudioEmbedding.id, AudioEmbedding.created_at).order_by(AudioEmbedding.id)
                                     .limit(1)).one()
        vectors = np.random.default_rng(7).standard_normal((4, 16))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        conn.execute(update(AudioEmbedding).where(AudioEmbedding.id == row_id).values(
            vectors=packing.pack(vectors.astype(np.float16)), created_at=stamp - timedelta(seconds=1)))
    _check(engine, settings, limit=3, like=uris[:1])


def test_approximate_search_finds_nine_in_ten_of_the_exact_hits(synthetic, index_dir):
    engine, settings = synthetic
    settings = settings.model_copy(update={"search_approximate_above": 5000})
    rng = np.random.default_rng(11)
    topics = rng.standard_normal((20, 16))
    # Windows of a file resemble each other, files of a topic too, as recordings do.
    for batch in range(6):
        names = [f"f{batch}-{i}" for i in range(50)]
        _store(engine, settings, names, windows=20, seed=batch, centre=lambda k: topics[k % 20] + rng.standard_normal(16))
    queries = list(_queries(engine, settings, [f"file:///synthetic/f{b}-{b}.wav" for b in range(6)]))
    found = []
    for query_vector in queries:
        hits = rank(engine, settings, REVISION, query_vector, 10)  # 6,000 windows: approximate
        expected = _scanned(engine, settings, query_vector, 10)
        found.append(len({hit[:2] for hit in expected} & {(hit.uri, hit.start_s) for hit in hits}) / 10)
        assert [hit.similarity for hit in hits] == sorted((hit.similarity for hit in hits), reverse=True)
    assert np.mean(found) >= 0.95
    folder, manifest = _manifest(index_dir)
    assert manifest["approximate"]["rows"] == 6000 and (folder / manifest["approximate"]["name"]).exists()
    # A file labeled since is found beside the approximate index; --exact compares every window.
    (added,) = _store(engine, settings, ["new"], windows=20, seed=99)
    like = stored_embeddings_of(engine, settings.model_ref, added)[0].vectors[3]
    assert rank(engine, settings, REVISION, like, 1)[0].uri == added
    assert _manifest(index_dir)[1]["approximate"]["rows"] == 6000
    exact = [(hit.uri, hit.start_s) for hit in rank(engine, settings, REVISION, queries[0], 10, approximate=False)]
    assert exact == [hit[:2] for hit in _scanned(engine, settings, queries[0], 10)]


def _topics(engine, settings, files, revision=REVISION):
    """``files`` files of 20 windows each, about 20 topics, as in the test above."""
    rng = np.random.default_rng(11)
    topics = rng.standard_normal((20, 16))
    for batch in range(0, files, 50):
        _store(engine, settings, [f"f{batch}-{i}" for i in range(min(50, files - batch))], windows=20, seed=batch,
               centre=lambda k: topics[k % 20] + rng.standard_normal(16), revision=revision)


def test_a_search_while_the_index_is_built_ahead_answers_exactly_without_waiting(synthetic, index_dir, monkeypatch):
    engine, settings = synthetic
    settings = settings.model_copy(update={"search_approximate_above": 1000})
    _topics(engine, settings, 60)  # 1,200 windows: past the threshold
    building, release, builds = threading.Event(), threading.Event(), []

    def held_build(*args, build=approximate_index.build):
        builds.append(threading.current_thread().name)
        if threading.current_thread().name == "ahead":
            building.set()
            assert release.wait(60), "the build ahead was never released"
        return build(*args)

    monkeypatch.setattr(approximate_index, "build", held_build)
    index = WindowIndex(engine, settings.model_ref, REVISION, index_dir, 1000)
    ahead = threading.Thread(target=lambda: builds.append(index.prepare_approximate()), name="ahead")
    ahead.start()
    assert building.wait(60)
    # Meanwhile: every window compared (the scan's answer), no approximate index built or waited for.
    for query_vector in _queries(engine, settings, ["file:///synthetic/f0-3.wav"]):
        hits = [(hit.uri, hit.start_s, hit.similarity) for hit in rank(engine, settings, REVISION, query_vector, 10)]
        expected = _scanned(engine, settings, query_vector, 10)
        assert [hit[:2] for hit in hits] == [hit[:2] for hit in expected]
    assert builds == ["ahead"] and _manifest(index_dir)[1]["approximate"] is None
    release.set()
    ahead.join()
    assert builds == ["ahead", True]
    folder, manifest = _manifest(index_dir)
    assert manifest["approximate"]["rows"] == 1200 and (folder / manifest["approximate"]["name"]).exists()
    # Ready: the next query takes it as it is.
    rank(engine, settings, REVISION, next(_queries(engine, settings, [])), 10)
    assert builds == ["ahead", True] and _manifest(index_dir)[1]["approximate"] == manifest["approximate"]


def test_an_index_built_ahead_is_extended_with_the_files_labeled_since(synthetic, index_dir):
    engine, settings = synthetic
    _topics(engine, settings, 60)
    index = WindowIndex(engine, settings.model_ref, REVISION, index_dir, 1000)
    assert index.prepare_approximate()
    _, first = _manifest(index_dir)
    assert not index.prepare_approximate()  # nothing new: nothing done
    (added,) = _store(engine, settings, ["new"], windows=20, seed=99)
    assert index.prepare_approximate()
    folder, extended = _manifest(index_dir)
    assert extended["approximate"]["rows"] == 1220 and extended["approximate"]["trained"] == 1200
    assert extended["approximate"]["segments"] == [seg["name"] for seg in extended["segments"]]
    assert not (folder / first["approximate"]["name"]).exists()
    # The added file's windows are found through the index's lists, not beside it.
    like = stored_embeddings_of(engine, settings.model_ref, added)[0].vectors[3]
    settings = settings.model_copy(update={"search_approximate_above": 1000})
    assert rank(engine, settings, REVISION, like, 1)[0].uri == added


@pytest.mark.slow
def test_a_jobs_end_past_the_threshold_has_a_worker_build_the_index_ahead(tmp_path, tiny_clap, export_dir, celery_env,
                                                                          workers, index_dir, monkeypatch):
    from model.classifier import load_classifier

    engine = engine_for(celery_env["SOUNDTAG_DATABASE_URL"])
    ensure_schema(engine)
    settings = Settings(model=str(tiny_clap), database_url=celery_env["SOUNDTAG_DATABASE_URL"], index_dir=index_dir,
                        search_approximate_above=1000)
    revision = load_classifier(str(tiny_clap), export_dir).revision  # what the worker stores under
    _topics(engine, settings, 55, revision=revision)  # 1,100 windows labeled before
    env = {**celery_env, "SOUNDTAG_SEARCH_APPROXIMATE_ABOVE": "1000"}
    worker = workers(env)
    for i in range(3):
        write(tmp_path / "archive" / f"clip{i}.wav", seconds=4.0, rate=22050, freq=200.0 + 50 * i)
    job = soundtag("enqueue", str(tmp_path / "archive"), "--labels", LABELS, env=env).stdout.strip().splitlines()[-1]
    assert "3 done, 0 failed" in soundtag("status", job, "--wait", env=env).stdout
    built = wait_for(lambda: index_dir.exists() and any(index_dir.iterdir())
                     and (_manifest(index_dir)[1].get("approximate") or {}).get("rows") == 1103,
                     120, "the worker to build the approximate index")
    assert built and "soundtag.build_index" in worker.log()
    _, manifest = _manifest(index_dir)
    assert manifest["approximate"]["name"].startswith("ahead-")
    # The first search takes it as built: nothing is built on the query path.
    monkeypatch.setattr(approximate_index, "build", lambda *args: pytest.fail("built on the query path"))
    hits = rank(engine, settings, revision, next(_queries(engine, settings, [])), 10)
    assert len(hits) == 10


def test_a_run_past_the_threshold_builds_the_index_at_its_end(tmp_path, tiny_clap, export_dir, sqlite_url, index_dir):
    from model.classifier import load_classifier

    engine = engine_for(sqlite_url)
    ensure_schema(engine)
    settings = Settings(model=str(tiny_clap), database_url=sqlite_url, index_dir=index_dir)
    revision = load_classifier(str(tiny_clap), export_dir).revision  # what the run stores under
    _topics(engine, settings, 55, revision=revision)  # 1,100 windows labeled before
    write(tmp_path / "archive" / "a.wav", seconds=3.0)
    args = ["run", str(tmp_path / "archive"), "--labels", LABELS, "--model", str(tiny_clap), "--database", sqlite_url]
    soundtag(*args, env={"SOUNDTAG_SEARCH_APPROXIMATE_ABOVE": "5000"})
    assert not index_dir.exists()  # below the threshold: no index made
    write(tmp_path / "archive" / "b.wav", seconds=3.0, freq=880.0)
    soundtag(*args, env={"SOUNDTAG_SEARCH_APPROXIMATE_ABOVE": "1000"})
    _, manifest = _manifest(index_dir)
    assert manifest["approximate"]["name"].startswith("ahead-") and manifest["approximate"]["rows"] == 1102
