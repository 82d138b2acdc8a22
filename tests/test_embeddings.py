"""db/embeddings.py: stored audio embeddings are usable only at their file's current fingerprint,
and each reader (by uri, by chunk of files, by row id, the summaries) gives exactly those rows."""

from datetime import datetime, timedelta, timezone
from itertools import islice

import numpy as np
import pytest
from sqlalchemy import select, text, update

from db import packing
from db.embeddings import (
    EmbeddingKey,
    EmbeddingsState,
    StoredEmbeddings,
    Unreadable,
    embedded_revision,
    embedded_uris,
    embedding_chunks,
    embedding_models,
    embedding_row,
    embedding_rows,
    embedding_stamps,
    embeddings_by_id,
    embeddings_state,
    stored_embeddings,
    stored_embeddings_of,
    unpack_row,
    windows_estimate,
)
from db.files import add_files
from db.jobs import create_job
from db.models import AudioEmbedding, File
from db.results import save_results
from db.schema import engine_for, ensure_schema
from model.results import FileResult, WindowResult
from soundtag.errors import DamagedData
from soundtag.fileref import FileRef
from soundtag.settings import Settings
from soundtag.states import FileState
from soundtag.taxonomy import taxonomy_from_csv

TAX = taxonomy_from_csv("dog,rain")
SCORES, COSINES = np.array([0.5, 0.5]), np.array([0.1, 0.1])
# 2020-01-01T00:00:00Z in microseconds since the epoch.
EPOCH_2020 = 1_577_836_800_000_000


def _job(engine, model="m", *names):
    job = create_job(engine, TAX, Settings(model=model), kind="run", sources=["/a"])
    add_files(engine, job, _refs(*names))
    return job


def _uri(name):
    return f"file:///a/{name}"


def _refs(*names, version="1"):
    return [FileRef(_uri(name), fingerprint=f"{name}:{version}") for name in names]


def _vectors(windows, seed):
    """Vectors each save tells apart, exact in fp16 and fp32 alike."""
    return (np.arange(windows * 4).reshape(windows, 4) + 16 * seed).astype(np.float32) / 8


def _result(name, windows=2, seed=0, window_s=1.0, hop_s=1.0, duration_s=None, **meta):
    segments = [WindowResult(hop_s * w, hop_s * w + window_s, SCORES, COSINES, v)
                for w, v in enumerate(_vectors(windows, seed))]
    return FileResult(_uri(name), duration_s=duration_s, scores=SCORES, similarity=COSINES, segments=segments, **meta)


def _save(engine, job, *results, revision="r1", window_s=1.0, hop_s=1.0, dtype="fp32"):
    save_results(engine, job, list(results), TAX.names, EmbeddingKey(revision, window_s, hop_s, dtype),
                 logit_scale=10.0)


def _store(engine, job, name, windows=2, seed=0, revision="r1", window_s=1.0, hop_s=1.0, **meta):
    _save(engine, job, _result(name, windows, seed, window_s, hop_s, **meta), revision=revision, window_s=window_s,
          hop_s=hop_s)


def _change(engine, job, *names):
    """The files changed on disk since they were embedded: their fingerprint is another."""
    add_files(engine, job, _refs(*names, version="2"))


def _damage(engine, name, **values):
    with engine.begin() as conn:
        conn.execute(update(AudioEmbedding).where(AudioEmbedding.file_id == select(File.id).where(
            File.uri == _uri(name)).scalar_subquery()).values(**values))


def _file_ids(engine):
    with engine.connect() as conn:
        return {uri.rsplit("/", 1)[1]: file_id for uri, file_id in conn.execute(select(File.uri, File.id))}


def _row_ids(engine):
    """Each stored row's id, by (file name, model, revision, window_s)."""
    with engine.connect() as conn:
        rows = conn.execute(select(File.uri, AudioEmbedding.model, AudioEmbedding.model_revision,
                                   AudioEmbedding.window_s, AudioEmbedding.id)
                            .join(File, File.id == AudioEmbedding.file_id))
        return {(uri.rsplit("/", 1)[1], model, revision, window_s): row_id
                for uri, model, revision, window_s, row_id in rows}


def _stamp(engine, row_id, seconds):
    """Sets a row's created_at to 2020-01-01 plus ``seconds`` and 7 µs (UTC)."""
    stamp = datetime(2020, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=seconds, microseconds=7)
    with engine.begin() as conn:
        conn.execute(update(AudioEmbedding).where(AudioEmbedding.id == row_id).values(created_at=stamp))
    return EPOCH_2020 + seconds * 1_000_000 + 7


def _seen(stored, ids):
    """What a reader is given of one file: its name, then its windows and vectors or why not."""
    name = stored.uri.rsplit("/", 1)[1]
    assert stored.file_id == ids[name]
    if isinstance(stored, Unreadable):
        return name, stored.reason
    return name, stored.starts.tolist(), stored.ends.tolist(), stored.vectors.tolist()


def _windows(windows, seed, window_s=1.0, hop_s=1.0):
    """_seen's tuple for embeddings as _result made them, without the name."""
    starts = [hop_s * w for w in range(windows)]
    return starts, [s + window_s for s in starts], _vectors(windows, seed).tolist()


def test_a_results_row_holds_each_windows_vector_and_bounds_packed_and_none_unless_every_window_has_one():
    key = EmbeddingKey("r7", 10.0, 5.0, "fp16")
    result = _result("a", windows=3, seed=2, window_s=10.0, hop_s=5.0)
    row = embedding_row(key, result.segments)
    assert set(row) == {"model_revision", "window_s", "hop_s", "dtype", "dim", "vectors", "starts", "ends"}
    assert (row["model_revision"], row["window_s"], row["hop_s"], row["dtype"], row["dim"]) == ("r7", 10.0, 5.0,
                                                                                               "fp16z", 4)
    np.testing.assert_array_equal(packing.unpack(row["vectors"], np.float16, True),
                                  _vectors(3, 2).astype(np.float16).ravel())
    assert packing.unpack(row["starts"], np.float64, True).tolist() == [0.0, 5.0, 10.0]
    assert packing.unpack(row["ends"], np.float64, True).tolist() == [10.0, 15.0, 20.0]
    assert embedding_row(key, []) is None
    result.segments[1].embedding = None  # scored from stored vectors: nothing to rewrite
    assert embedding_row(key, result.segments) is None


def test_stored_embeddings_read_back_as_saved_with_the_files_metadata(engine):
    job = _job(engine, "m", "a")
    _save(engine, job, _result("a", windows=3, seed=1, window_s=10.0, hop_s=5.0, duration_s=20.0, sample_rate=48000,
                               channels=2, content_hash="c0ffee"), window_s=10.0, hop_s=5.0, dtype="fp16")
    (stored,) = stored_embeddings(engine, "m", "r1", 10.0, 5.0, [_uri("a")]).values()
    assert (stored.file_id, stored.uri, stored.duration_s, stored.sample_rate, stored.channels, stored.content_hash) \
        == (_file_ids(engine)["a"], _uri("a"), 20.0, 48000, 2, "c0ffee")
    assert stored.vectors.dtype == np.float32 and stored.vectors.shape == (3, 4)
    np.testing.assert_array_equal(stored.vectors, _vectors(3, 1))
    assert stored.starts.dtype == stored.ends.dtype == np.float64
    assert stored.starts.tolist() == [0.0, 5.0, 10.0] and stored.ends.tolist() == [10.0, 15.0, 20.0]


def test_stored_embeddings_are_those_of_the_uris_model_revision_window_and_hop_at_the_files_fingerprint(engine):
    job = _job(engine, "m", *"abcdefgh")
    _store(engine, job, "a", seed=1)
    _store(engine, job, "b", window_s=2.0)
    _store(engine, job, "c", hop_s=0.5)
    _store(engine, job, "d", revision="r2")
    _store(engine, _job(engine, "other", "e"), "e")
    _store(engine, job, "f")
    _change(engine, job, "f")  # its old vectors describe another recording
    _store(engine, job, "g")
    _damage(engine, "g", vectors=b"not deflated")  # read again instead
    _store(engine, job, "h")  # not asked for
    found = stored_embeddings(engine, "m", "r1", 1.0, 1.0, [_uri(name) for name in "abcdefg"] + [_uri("unknown")])
    assert list(found) == [_uri("a")]
    assert _seen(found[_uri("a")], _file_ids(engine)) == ("a", *_windows(2, 1))
    assert list(stored_embeddings(engine, "m", "r1", 2.0, 1.0, [_uri("b")])) == [_uri("b")]
    assert stored_embeddings(engine, "m", "r1", 1.0, 1.0, []) == {}


@pytest.mark.parametrize("damage, reason", [
    ({"dtype": "bf16z"}, "unknown dtype 'bf16z'"),
    ({"vectors": packing.pack(_vectors(2, 0))}, "2 vectors for 3 windows"),
    ({"ends": packing.pack(np.array([1.0, 2.0]))}, "3 vectors for 3 windows"),
    ({"dim": 5}, "cannot reshape array of size 12"),
    ({"vectors": b"not deflated"}, "Error -3 while decompressing"),
], ids=["unknown dtype", "vectors lost", "ends lost", "wrong dim", "not deflated"])
def test_a_damaged_row_raises_naming_the_file_and_why_in_stored_embeddings_of(engine, damage, reason):
    job = _job(engine, "m", "a")
    _store(engine, job, "a", windows=3)
    _damage(engine, "a", **damage)
    with pytest.raises(DamagedData, match=f"^file:///a/a: stored embeddings unreadable \\({reason}"):
        stored_embeddings_of(engine, "m", _uri("a"))


def test_rows_written_before_packing_still_read(engine):
    job = _job(engine, "m", "long")
    vectors = np.random.default_rng(3).standard_normal((360, 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    segments = [WindowResult(10.0 * w, 10.0 * w + 10.0, SCORES, COSINES, v) for w, v in enumerate(vectors)]
    _save(engine, job, FileResult(_uri("long"), duration_s=3600.0, scores=SCORES, similarity=COSINES,
                                  segments=segments), window_s=10.0, hop_s=10.0, dtype="fp16")

    def read():
        found, revision = stored_embeddings_of(engine, "m", _uri("long"))
        assert revision == "r1"
        np.testing.assert_array_equal(found.vectors, vectors.astype(np.float16).astype(np.float32))
        np.testing.assert_array_equal(found.starts, 10.0 * np.arange(360))
        np.testing.assert_array_equal(found.ends, 10.0 * np.arange(360) + 10.0)

    read()
    with engine.begin() as conn:
        kind, size = conn.execute(text("select dtype, length(vectors) from audio_embedding")).one()
        assert kind == "fp16z" and size < 0.9 * 360 * 512 * 2
        # A row as versions before packing wrote it: raw fp16 vectors and float64 bounds.
        conn.execute(text("update audio_embedding set dtype = 'fp16', vectors = :v, starts = :s, ends = :e"),
                     {"v": vectors.astype(np.float16).tobytes(), "s": (10.0 * np.arange(360)).tobytes(),
                      "e": (10.0 * np.arange(360) + 10.0).tobytes()})
    read()


def test_stored_embeddings_of_a_file_are_its_latest_of_the_model_with_their_revision(engine):
    job = _job(engine, "m", "a", "b", "c")
    _store(engine, job, "a", seed=1)
    _store(engine, job, "a", seed=2, revision="r2", window_s=2.0)
    _store(engine, _job(engine, "other", "b"), "b")
    _store(engine, job, "c")
    _change(engine, job, "c")
    stored, revision = stored_embeddings_of(engine, "m", _uri("a"))
    assert (revision, _seen(stored, _file_ids(engine))) == ("r2", ("a", *_windows(2, 2, window_s=2.0)))
    assert stored_embeddings_of(engine, "m", _uri("b")) is None
    assert stored_embeddings_of(engine, "m", _uri("c")) is None
    assert stored_embeddings_of(engine, "m", _uri("unknown")) is None


def _chunked(engine, *args, **kwargs):
    """embedding_chunks' chunks, as _seen gives each file, cut short should they never end."""
    ids = _file_ids(engine)
    return [[_seen(stored, ids) for stored in chunk] for chunk in islice(embedding_chunks(engine, *args, **kwargs), 20)]


def test_embedding_chunks_give_each_usable_files_latest_embeddings_in_file_order_losing_and_repeating_none(engine):
    job = _job(engine, "m", *"abcdeg")
    _store(engine, job, "e", seed=5)  # stored before the files added before it
    _store(engine, job, "a", seed=1)
    _store(engine, job, "a", seed=2, revision="r2", window_s=2.0)  # its latest
    _store(engine, job, "b", seed=3)
    _store(engine, job, "c", seed=4)
    _change(engine, job, "c")
    _store(engine, job, "d", windows=3)
    _damage(engine, "d", vectors=packing.pack(_vectors(2, 0)))
    _store(engine, job, "g")
    _damage(engine, "g", dtype="bf16z")
    _store(engine, _job(engine, "other", "f"), "f")
    a, a_r1, b = ("a", *_windows(2, 2, window_s=2.0)), ("a", *_windows(2, 1)), ("b", *_windows(2, 3))
    d, e = ("d", "file:///a/d: stored embeddings unreadable (2 vectors for 3 windows)"), ("e", *_windows(2, 5))
    g = ("g", "file:///a/g: stored embeddings unreadable (unknown dtype 'bf16z')")
    assert _chunked(engine, "m", chunk=1) == [[a], [b], [d], [e], [g]]
    assert _chunked(engine, "m", chunk=2) == [[a, b], [d, e], [g]]
    assert _chunked(engine, "m", chunk=3) == [[a, b, d], [e, g]]
    assert _chunked(engine, "m") == [[a, b, d, e, g]]
    assert _chunked(engine, "m", "r1", chunk=2) == [[a_r1, b], [d, e], [g]]
    assert _chunked(engine, "m", "r2", chunk=1) == [[a]]  # no empty chunk for the files of other revisions
    assert _chunked(engine, "other") == [[("f", *_windows(2, 0))]]
    assert _chunked(engine, "none") == []


def test_embedding_chunks_of_a_job_are_its_files_with_that_status_there_or_of_the_file_ids(engine):
    first = _job(engine, "m", *"abcd")
    for seed, name in enumerate("abcd"):
        _store(engine, first, name, seed=seed)
    second = _job(engine, "m", *"bcde")  # b, c and d already labeled: skipped there
    _save(engine, second, _result("d", seed=7), _result("e", seed=8))
    _save(engine, second, FileResult(_uri("c"), error="unreadable"))  # its stored vectors stay
    ids = _file_ids(engine)
    a, b, c = ("a", *_windows(2, 0)), ("b", *_windows(2, 1)), ("c", *_windows(2, 2))
    d, e = ("d", *_windows(2, 7)), ("e", *_windows(2, 8))
    assert _chunked(engine, "m", job_id=first, chunk=2) == [[a, b], [c, d]]
    assert _chunked(engine, "m", job_id=second, chunk=2) == [[b, c], [d, e]]
    assert _chunked(engine, "m", job_id=second, status=FileState.DONE, chunk=1) == [[d], [e]]
    assert _chunked(engine, "m", job_id=second, status=FileState.FAILED) == [[c]]
    assert _chunked(engine, "m", job_id=second, status=FileState.SKIPPED) == [[b]]
    assert _chunked(engine, "m", job_id="no-such-job") == []
    assert _chunked(engine, "m", file_ids=[ids["e"], ids["a"]], chunk=1) == [[a], [e]]
    assert _chunked(engine, "m", job_id=second, file_ids=[ids["a"], ids["d"]]) == [[d]]
    assert _chunked(engine, "m", file_ids=[]) == []


def test_embedded_uris_are_those_asked_with_usable_embeddings_of_the_model_revision(engine):
    job = _job(engine, "m", *"abcdef")
    add_files(engine, job, [FileRef(_uri("twin"), fingerprint="a:1")])  # a's size and time, no embeddings
    _store(engine, job, "a")
    _store(engine, job, "b", revision="r2")
    _store(engine, _job(engine, "other", "c"), "c")
    _store(engine, job, "d")
    _change(engine, job, "d")
    _store(engine, job, "f")  # not asked for
    asked = [_uri(name) for name in "abcde"] + [_uri("twin"), _uri("unknown")]
    assert embedded_uris(engine, "m", "r1", asked) == {_uri("a")}
    assert embedded_uris(engine, "m", "r2", asked) == {_uri("b")}
    assert embedded_uris(engine, "other", "r1", asked) == {_uri("c")}
    assert embedded_uris(engine, "m", "r1", []) == set()


def test_embedding_models_are_those_stored_sorted_of_the_uris_when_given(engine):
    _store(engine, _job(engine, "zeta", "a", "b"), "a")
    _store(engine, _job(engine, "m", "a", "b"), "a")
    _store(engine, _job(engine, "alpha", "c"), "c")
    assert embedding_models(engine) == ["alpha", "m", "zeta"]
    assert embedding_models(engine, [_uri("a"), _uri("b")]) == ["m", "zeta"]
    assert embedding_models(engine, [_uri("c"), _uri("unknown")]) == ["alpha"]
    assert embedding_models(engine, []) == []


def test_embedded_revision_is_the_newest_usable_of_the_model_among_the_files(engine):
    job = _job(engine, "m", *"abcd")
    _store(engine, job, "a")
    _store(engine, job, "b", revision="r2")
    _store(engine, job, "a", revision="r3")
    _store(engine, job, "c", revision="r4")  # newer, not among the files asked
    _store(engine, job, "d", revision="r5")
    _change(engine, job, "d")  # newest, not usable
    _store(engine, _job(engine, "other", "b"), "b", revision="r6")
    ids = _file_ids(engine)
    assert embedded_revision(engine, "m", [ids["a"], ids["b"], ids["d"]]) == "r3"
    assert embedded_revision(engine, "m", [ids["b"]]) == "r2"
    assert embedded_revision(engine, "other", [ids["a"], ids["b"]]) == "r6"
    assert embedded_revision(engine, "m", [ids["d"]]) is None
    assert embedded_revision(engine, "m", []) is None


def test_embeddings_state_sums_the_usable_rows_up_to_an_id_and_all_and_changes_when_a_row_is_replaced(engine):
    job = _job(engine, "m", *"abcde")
    _store(engine, job, "a")
    _store(engine, job, "b")
    _store(engine, job, "b", window_s=2.0)  # a second row of b: one extra
    _store(engine, job, "c", revision="r2")
    _store(engine, _job(engine, "other", "d"), "d")
    _store(engine, job, "e")
    _change(engine, job, "e")
    rows = _row_ids(engine)
    a, b1, b2 = rows["a", "m", "r1", 1.0], rows["b", "m", "r1", 1.0], rows["b", "m", "r1", 2.0]
    for seconds, key in enumerate([("c", "m", "r2", 1.0), ("d", "other", "r1", 1.0), ("e", "m", "r1", 1.0)]):
        _stamp(engine, rows[key], 100 + seconds)  # newest of all, none usable
    at_a, _, at_b2 = _stamp(engine, a, 20), _stamp(engine, b1, 10), _stamp(engine, b2, 30)  # b1's not the newest
    assert embeddings_state(engine, "m", "r1", b1) == (EmbeddingsState(b1, 2, a + b1, at_a, 1),
                                                       EmbeddingsState(b2, 3, a + b1 + b2, at_b2, 1))
    assert embeddings_state(engine, "m", "r1", b1 - 1)[0] == EmbeddingsState(b1 - 1, 1, a, at_a, 1)
    before = embeddings_state(engine, "m", "r1", b2)
    assert before[0] == before[1] == EmbeddingsState(b2, 3, a + b1 + b2, at_b2, 1)
    _store(engine, job, "b", seed=9)  # replaced in place: the same id, a new stamp
    after = embeddings_state(engine, "m", "r1", b2)
    assert _row_ids(engine)["b", "m", "r1", 1.0] == b1
    assert after[0] == after[1] != before[1] and after[1].latest > before[1].latest
    assert (after[1].upto, after[1].rows, after[1].id_sum, after[1].extra) == (b2, 3, a + b1 + b2, 1)
    assert embeddings_state(engine, "m", "r9", 5) == (EmbeddingsState(5, 0, 0, 0, 0), EmbeddingsState(0, 0, 0, 0, 0))


def test_windows_estimate_counts_one_per_file_shorter_than_its_window_else_its_duration_over_the_hop_plus_one(engine):
    job = _job(engine, "m", *"abcdefg")
    assert windows_estimate(engine, "m", "r1") == 0
    _store(engine, job, "a", windows=1, duration_s=0.5)  # shorter than the window: 1
    _store(engine, job, "b", windows=1, hop_s=0.5, duration_s=1.0)  # exactly one window: 1
    _store(engine, job, "c", windows=4, window_s=10.0, hop_s=5.0, duration_s=26.0)  # 26 / 5 + 1: 6
    _store(engine, job, "c", windows=3, window_s=10.0, hop_s=8.0, duration_s=26.0)  # another row: 26 / 8 + 1: 4
    _store(engine, job, "d", windows=4, revision="r2", duration_s=26.0)
    _store(engine, _job(engine, "other", "e"), "e", windows=4, duration_s=26.0)
    _store(engine, job, "f", windows=4, duration_s=26.0)
    _change(engine, job, "f")
    assert windows_estimate(engine, "m", "r1") == 1 + 1 + 6 + 4
    assert windows_estimate(engine, "m", "r2") == 27


def _by_id(engine):
    """Rows whose ids and stamps are known: c first, a twice (its latest last), b, and a row of
    another revision, of another model and of a changed file."""
    job = _job(engine, "m", *"abcdef")
    _store(engine, job, "c", seed=3)
    _store(engine, job, "a", seed=1)
    _store(engine, job, "b", seed=2)
    _store(engine, job, "a", seed=4, window_s=2.0)
    _store(engine, job, "d", seed=5, revision="r2")
    _store(engine, _job(engine, "other", "e"), "e")
    _store(engine, job, "f")
    _change(engine, job, "f")
    rows = _row_ids(engine)
    # Stamped out of id order, a's first row last: where rows are read in the order they were
    # written (PostgreSQL's heap), only an ORDER BY gives them by id.
    ids = {"a2": rows["a", "m", "r1", 2.0], "c": rows["c", "m", "r1", 1.0], "b": rows["b", "m", "r1", 1.0],
           "a": rows["a", "m", "r1", 1.0], "d": rows["d", "m", "r2", 1.0], "e": rows["e", "other", "r1", 1.0],
           "f": rows["f", "m", "r1", 1.0]}
    stamps = {name: _stamp(engine, row_id, seconds) for seconds, (name, row_id) in enumerate(ids.items())}
    if engine.dialect.name == "postgresql":  # with statistics, as an archive in use has, the planner reads the heap
        with engine.begin() as conn:
            conn.execute(text("ANALYZE audio_embedding, file"))
    return ids, stamps


def test_embedding_stamps_are_the_ids_and_stamps_of_each_files_latest_usable_row_after_an_id_by_id(engine):
    ids, stamps = _by_id(engine)
    found = embedding_stamps(engine, "m", "r1")
    assert found[0].dtype == found[1].dtype == np.int64
    assert [found[0].tolist(), found[1].tolist()] == [[ids["c"], ids["b"], ids["a2"]],
                                                      [stamps["c"], stamps["b"], stamps["a2"]]]
    after_c = embedding_stamps(engine, "m", "r1", ids["c"])
    assert [after_c[0].tolist(), after_c[1].tolist()] == [[ids["b"], ids["a2"]], [stamps["b"], stamps["a2"]]]
    assert embedding_stamps(engine, "m", "r1", ids["a2"])[0].tolist() == []
    assert embedding_stamps(engine, "m", "r2")[0].tolist() == [ids["d"]]


def test_embedding_rows_read_the_usable_rows_of_the_ids_by_id_a_chunk_at_a_time(engine):
    ids, stamps = _by_id(engine)
    files = _file_ids(engine)
    asked = [ids["a2"], ids["a"], ids["d"], ids["e"], ids["f"], ids["b"], ids["c"]]
    chunks = list(islice(embedding_rows(engine, "m", "r1", asked, chunk=2), 10))
    seen = [[(row_id, stamp, _seen(unpack_row(row), files)) for row_id, stamp, row in chunk] for chunk in chunks]
    c, a, b, a2 = ("c", *_windows(2, 3)), ("a", *_windows(2, 1)), ("b", *_windows(2, 2)), ("a", *_windows(2, 4, 2.0))
    assert seen == [[(ids["a"], stamps["a"], a), (ids["a2"], stamps["a2"], a2)], [], [(ids["b"], stamps["b"], b)],
                    [(ids["c"], stamps["c"], c)]]
    everything = list(islice(embedding_rows(engine, "m", "r1", np.array(asked)), 10))
    assert [[row_id for row_id, _, _ in chunk] for chunk in everything] == [sorted([ids["c"], ids["a"], ids["b"],
                                                                                   ids["a2"]])]


def test_embeddings_by_id_are_the_usable_readable_rows_of_the_ids_with_their_stamps(engine):
    ids, stamps = _by_id(engine)
    _damage(engine, "b", dtype="bf16z")
    files = _file_ids(engine)
    found = embeddings_by_id(engine, "m", "r1", [ids["a2"], ids["b"], ids["d"], ids["e"], ids["f"], ids["a"]])
    assert {row_id: (stamp, _seen(stored, files)) for row_id, (stamp, stored) in found.items()} == {
        ids["a"]: (stamps["a"], ("a", *_windows(2, 1))), ids["a2"]: (stamps["a2"], ("a", *_windows(2, 4, 2.0)))}
    assert all(isinstance(stored, StoredEmbeddings) for _, stored in found.values())
    assert embeddings_by_id(engine, "m", "r1", []) == {}


def test_stamps_are_the_same_microseconds_whatever_the_postgresql_servers_time_zone(pg_url):
    engine = engine_for(pg_url)
    ensure_schema(engine)
    with engine.begin() as conn:
        conn.execute(text(f"ALTER DATABASE \"{engine.url.database}\" SET TimeZone = 'Asia/Kolkata'"))
    engine.dispose()  # new sessions: their stamps come back at +05:30
    _store(engine, _job(engine, "m", "a"), "a")
    (row_id,) = _row_ids(engine).values()
    stamp = _stamp(engine, row_id, 0)
    assert embedding_stamps(engine, "m", "r1")[1].tolist() == [stamp]
    assert embeddings_state(engine, "m", "r1", row_id)[1].latest == stamp
    engine.dispose()
