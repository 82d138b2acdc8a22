"""Hugging Face datasets as sources, in each form a person has them: saved with save_to_disk,
Parquet files, an audiofolder, and a Hub dataset in the local cache (offline)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from soundtag.errors import ReadError, SourceError
from soundtag.sources.hf_datasets import DatasetRef, parse_row, parse_source
from soundtag.sources.storage import Storage
from soundtag.sources.walk import walk
from tests.audio_files import write
from tests.conftest import query, soundtag

LABELS = "dog,rain,siren"
CLASSES = ["dog", "rain", "siren", "cat"]


@pytest.fixture(autouse=True)
def hf_cache(tmp_path, monkeypatch):
    """This process's datasets cache in the test's folder, never the user's."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf" / "datasets")
    return tmp_path / "hf"


def _clips(folder, n: int):
    return [write(folder / f"clip{i}.wav", seconds=1.0 + 0.5 * i, freq=200.0 + 150 * i) for i in range(n)]


def _dataset(paths, labels, audio="audio"):
    """An audio dataset as users build one, without datasets' torchcodec encoder: the audio
    column is a {bytes, path} struct cast to Audio, the label a ClassLabel."""
    from datasets import Audio, ClassLabel, Dataset

    ds = Dataset.from_dict({audio: [{"bytes": p.read_bytes(), "path": p.name} for p in paths],
                            "label": [CLASSES.index(label) for label in labels],
                            "caption": [f"{label} {i}" for i, label in enumerate(labels)]})
    return ds.cast_column(audio, Audio()).cast_column("label", ClassLabel(names=CLASSES))


def test_run_labels_a_saved_dataset_with_its_truth(tmp_path, tiny_clap, sqlite_url):
    from datasets import DatasetDict

    paths = _clips(tmp_path / "clips", 6)
    DatasetDict(train=_dataset(paths[:4], ["dog", "rain", "dog", "siren"]),
                test=_dataset(paths[4:], ["rain", "cat"])).save_to_disk(tmp_path / "esc")
    args = ("run", f"hf://{tmp_path}/esc", "--truth-column", "label", "--labels", LABELS, "--model", str(tiny_clap),
            "--database", sqlite_url)
    env = {"HF_HOME": str(tmp_path / "hf")}

    assert "6 labeled, 0 failed, 0 skipped" in soundtag(*args, env=env).stderr

    files = query(sqlite_url, "select uri, status, truth, content_hash, duration_s from files order by uri")
    assert [(f.uri, f.status, f.truth) for f in files] == [
        (f"hf://{tmp_path}/esc:test/0", "done", "rain"), (f"hf://{tmp_path}/esc:test/1", "done", "cat"),
        (f"hf://{tmp_path}/esc:train/0", "done", "dog"), (f"hf://{tmp_path}/esc:train/1", "done", "rain"),
        (f"hf://{tmp_path}/esc:train/2", "done", "dog"), (f"hf://{tmp_path}/esc:train/3", "done", "siren")]
    # The worker read each row's own bytes back from its URI.
    assert files[3].content_hash == hashlib.sha256(paths[1].read_bytes()).hexdigest()
    assert files[1].duration_s == pytest.approx(3.5)
    assert len(query(sqlite_url, "select * from file_labels where rank = 1")) == 6

    assert "0 labeled, 0 failed, 6 skipped" in soundtag(*args, env=env).stderr


def _cache_as_hub_dataset(hf_home, repo: str, splits: dict, commit: str) -> None:
    """Put a dataset in the Hugging Face cache exactly where `load_dataset(repo)` left it after a
    download from the Hub at `commit`, so that it loads with HF_HUB_OFFLINE=1."""
    from datasets.packaged_modules.parquet.parquet import Parquet

    builder = Parquet(cache_dir=str(hf_home / "datasets"), dataset_name=repo.split("/")[1], hash=commit,
                      data_files={split: str(path) for split, path in splits.items()})
    builder.download_and_prepare()
    owner, name = repo.split("/")
    shutil.move(builder.cache_dir, hf_home / "datasets" / f"{owner}___{name}" / "default" / "0.0.0" / commit)


def test_hub_dataset_is_read_from_the_offline_cache(tmp_path, tiny_clap, sqlite_url):
    paths = _clips(tmp_path / "clips", 3)
    _dataset(paths[:2], ["dog", "siren"]).to_parquet(tmp_path / "train.parquet")
    _dataset(paths[2:], ["rain"]).to_parquet(tmp_path / "test.parquet")
    hf_home = tmp_path / "hub-home"
    splits = {"train": tmp_path / "train.parquet", "test": tmp_path / "test.parquet"}
    _cache_as_hub_dataset(hf_home, "owner/esc", splits, commit="0123456789abcdef0123456789abcdef01234567")
    env = {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}

    soundtag("run", "hf://owner/esc:train", "--truth-column", "label", "--labels", LABELS, "--model", str(tiny_clap),
             "--database", sqlite_url, env=env)
    files = query(sqlite_url, "select uri, status, truth, content_hash from files order by uri")
    assert [(f.uri, f.status, f.truth) for f in files] == [("hf://owner/esc:train/0", "done", "dog"),
                                                           ("hf://owner/esc:train/1", "done", "siren")]
    assert files[1].content_hash == hashlib.sha256(paths[1].read_bytes()).hexdigest()

    proc = soundtag("run", "hf://owner/nope", "--labels", LABELS, "--database", sqlite_url, env=env, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"error: hf://owner/nope: not in the Hugging Face cache ({hf_home / 'datasets'}) and HF_HUB_OFFLINE is set" \
        in proc.stderr


def test_parquet_file_and_folder_rows_read_back_their_bytes(tmp_path):
    paths = _clips(tmp_path / "clips", 5)
    _dataset(paths, ["dog", "rain", "siren", "dog", "cat"]).to_parquet(tmp_path / "one.parquet")
    (tmp_path / "pq").mkdir()
    _dataset(paths[:3], ["dog", "rain", "siren"]).to_parquet(tmp_path / "pq" / "train-00000-of-00001.parquet")
    _dataset(paths[3:], ["dog", "cat"]).to_parquet(tmp_path / "pq" / "test-00000-of-00001.parquet")

    one = list(walk(f"hf://{tmp_path}/one.parquet", truth_column="caption"))
    assert [r.uri for r in one] == [f"hf://{tmp_path}/one.parquet:train/{i}" for i in range(5)]
    assert [r.truth for r in one] == ["dog 0", "rain 1", "siren 2", "dog 3", "cat 4"]
    folder = list(walk(f"hf://{tmp_path}/pq", truth_column="label"))
    assert sorted(r.uri.rsplit(":", 1)[1] for r in folder) == ["test/0", "test/1", "train/0", "train/1", "train/2"]
    test_split = list(walk(f"hf://{tmp_path}/pq:test", truth_column="label"))
    assert [(r.uri.rsplit(":", 1)[1], r.truth) for r in test_split] == [("test/0", "dog"), ("test/1", "cat")]

    storage = Storage()
    assert _read(storage, one[4].uri) == paths[4].read_bytes()
    assert _read(storage, test_split[1].uri) == paths[4].read_bytes()
    with pytest.raises(ReadError, match=r":test/7: no such row \(the split has 2\)"):
        _read(storage, f"hf://{tmp_path}/pq:test/7")
    for row in (0, 1):  # a dataset that cannot load fails each of its rows with the reason
        with pytest.raises(ReadError, match=f"^hf://{tmp_path}/gone: no such file or directory$"):
            _read(storage, f"hf://{tmp_path}/gone:train/{row}")

    _dataset(paths[:2], ["rain", "rain"]).to_parquet(tmp_path / "one.parquet")  # the data changes
    assert list(walk(f"hf://{tmp_path}/one.parquet"))[0].fingerprint != one[0].fingerprint


def _read(storage: Storage, uri: str) -> bytes:
    with storage.open(uri) as file:
        return file.read()


def test_audio_column_is_chosen_and_named_in_the_uri_when_ambiguous(tmp_path):
    from datasets import Audio, Dataset

    mixes, voices = _clips(tmp_path / "mix", 2), _clips(tmp_path / "stems" / "voice", 2)
    ds = Dataset.from_dict({"mix": [{"bytes": p.read_bytes(), "path": None} for p in mixes],
                            "voice": [{"bytes": p.read_bytes(), "path": None} for p in voices],
                            "file": [str(voices[0]), "voice/clip1.wav"]})
    ds.cast_column("mix", Audio()).cast_column("voice", Audio()).save_to_disk(tmp_path / "stems")
    source = f"hf://{tmp_path}/stems"

    with pytest.raises(SourceError, match=r"several Audio columns \(mix, voice\); choose one with --audio-column"):
        list(walk(source))
    refs = list(walk(source, audio_column="voice"))
    assert refs[1].uri == f"hf://{tmp_path}/stems:train/1#voice"
    assert _read(Storage(), refs[1].uri) == voices[1].read_bytes()
    # A column of paths inside the dataset's folder, absolute or relative to it: each row is read from its file.
    by_path = list(walk(source, audio_column="file"))
    assert [_read(Storage(), ref.uri) for ref in by_path] == [voices[0].read_bytes(), voices[1].read_bytes()]


def test_dataset_paths_leading_out_of_its_folder_are_refused(tmp_path):
    from datasets import Dataset

    inside = _clips(tmp_path / "ds" / "audio", 1)[0]
    outside = _clips(tmp_path / "private", 1)[0]
    (tmp_path / "ds" / "audio" / "link.wav").symlink_to(outside)
    os.mkfifo(tmp_path / "ds" / "audio" / "pipe.wav")  # reading it would block the worker forever
    paths = ["audio/clip0.wav", "../private/clip0.wav", str(outside), "audio/link.wav", "/dev/zero", "audio/none.wav",
             "audio/pipe.wav"]
    Dataset.from_dict({"file": paths}).save_to_disk(tmp_path / "ds")
    uris = [ref.uri for ref in walk(f"hf://{tmp_path}/ds", audio_column="file")]

    storage = Storage()
    assert _read(storage, uris[0]) == inside.read_bytes()
    for uri, path in zip(uris[1:4], paths[1:4]):
        with pytest.raises(ReadError, match=rf"^{uri}: {path}: outside the dataset's folder {tmp_path}/ds$"):
            _read(storage, uri)
    with pytest.raises(ReadError, match=rf"^{uris[4]}: /dev/zero: outside the dataset's folder"):
        _read(storage, uris[4])
    with pytest.raises(ReadError, match=rf"^{uris[5]}: {tmp_path}/ds/audio/none.wav: file not found$"):
        _read(storage, uris[5])
    with pytest.raises(ReadError, match=rf"^{uris[6]}: {tmp_path}/ds/audio/pipe.wav: not a regular file$"):
        _read(storage, uris[6])


@pytest.mark.parametrize("source, options, message", [
    ("hf://{tmp}/saved:valid", {}, "hf://{tmp}/saved: no split 'valid' (splits: train)"),
    ("hf://{tmp}/saved", {"truth_column": "species"}, "no column 'species' (columns: audio, label, caption)"),
    ("hf://{tmp}/saved", {"audio_column": "label"}, "column 'label' holds ClassLabel"),
    ("hf://{tmp}/saved", {"pattern": "*.wav"}, "--pattern selects files by name; a dataset's rows have none"),
    ("hf://{tmp}/clips", {}, "no Parquet files and not saved with save_to_disk"),
    ("hf://{tmp}/nowhere", {}, "hf://{tmp}/nowhere: no such file or directory"),
    ("hf://not a dataset", {}, "expected hf://OWNER/NAME[@REVISION][:SPLIT]"),
    ("{tmp}/clips", {"audio_column": "audio"}, "--audio-column applies to hf:// datasets only"),
])
def test_dataset_problems_are_one_line(tmp_path, source, options, message):
    paths = _clips(tmp_path / "clips", 2)
    _dataset(paths, ["dog", "rain"]).save_to_disk(tmp_path / "saved")
    pattern = options.pop("pattern", None)
    with pytest.raises(SourceError) as caught:
        list(walk(source.format(tmp=tmp_path), pattern, **options))
    assert message.format(tmp=tmp_path) in str(caught.value) and "\n" not in str(caught.value)


def test_audiofolder_metadata_gives_each_file_its_truth(tmp_path):
    root = tmp_path / "folder"
    _clips(root / "train", 2)
    _clips(root / "test", 1)
    (root / "train" / "metadata.csv").write_text("file_name,category\nclip0.wav,dog\nclip1.wav,Rain\n")
    (root / "test" / "metadata.jsonl").write_text(json.dumps({"file_name": "clip0.wav", "category": "siren"}) + "\n")

    refs = {r.uri.split("/folder/")[1]: r for r in walk(str(root), truth_column="category")}
    assert {name: r.truth for name, r in refs.items()} == {"train/clip0.wav": "dog", "train/clip1.wav": "Rain",
                                                          "test/clip0.wav": "siren"}
    assert refs["train/clip0.wav"].uri == (root / "train" / "clip0.wav").as_uri()
    with pytest.raises(SourceError, match=r"metadata\.(csv|jsonl): no column 'species' \(columns: file_name, categ"):
        list(walk(str(root), truth_column="species"))


def test_folder_names_are_the_label_without_metadata(tmp_path):
    _clips(tmp_path / "dog", 1)
    _clips(tmp_path / "rain", 2)
    assert sorted(r.truth for r in walk(str(tmp_path), truth_column="label")) == ["dog", "rain", "rain"]
    with pytest.raises(SourceError, match="no metadata.csv or metadata.jsonl to read --truth-column 'kind' from"):
        list(walk(str(tmp_path), truth_column="kind"))


@pytest.mark.parametrize("source, ref, split", [
    ("hf://owner/name", DatasetRef("owner/name"), None),
    ("hf://owner/name@v1.0:test", DatasetRef("owner/name", "v1.0"), "test"),
    ("hf://datasets/owner/name@refs/convert/parquet:train", DatasetRef("owner/name", "refs/convert/parquet"), "train"),
    ("hf://esc50", DatasetRef("esc50"), None),
    ("hf:///data/sets/esc:fold1", DatasetRef("/data/sets/esc"), "fold1"),
])
def test_source_uris_name_dataset_revision_and_split(source, ref, split):
    assert parse_source(source) == (ref, split)


def test_row_uris_round_trip():
    assert parse_source("hf://./esc")[0] == DatasetRef(str(Path.cwd() / "esc"))
    for ref, split, row, column in [(DatasetRef("owner/name", "refs/pr/3"), "train", 12, None),
                                    (DatasetRef("/data/my:set"), "test", 0, "stem #2"),
                                    (DatasetRef("owner/name"), "validation", 99999, "audio")]:
        assert parse_row(ref.row_uri(split, row, column)) == (ref, split, row, column)
    assert DatasetRef("owner/name", "v2").row_uri("train", 5) == "hf://owner/name@v2:train/5"
