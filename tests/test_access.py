"""What a worker reads, whatever a message names: regular files, inside SOUNDTAG_ALLOWED_ROOTS,
objects in SOUNDTAG_ALLOWED_BUCKETS."""

from __future__ import annotations

import pytest

from soundtag.errors import ReadError
from soundtag.settings import Settings
from soundtag.sources.storage import Storage
from soundtag.sources.uris import file_uri
from tests.audio_files import write
from tests.conftest import query, soundtag
from tests.test_s3 import bucket, s3_server  # noqa: F401 - fixtures

LABELS = "dog barking,rain,siren"


def test_files_outside_the_allowed_roots_are_refused(tmp_path):
    archive, private = tmp_path / "archive", tmp_path / "private"
    inside = write(archive / "a.wav")
    secret = write(private / "secret.wav")
    (archive / "link.wav").symlink_to(secret)
    storage = Storage(roots=[str(archive), str(tmp_path / "other")])

    assert _read(storage, file_uri(str(inside))) == inside.read_bytes()
    for uri in (file_uri(str(secret)), file_uri(str(archive / "link.wav")), str(secret),
                file_uri(f"{archive}/../private/secret.wav"), "file:///etc/passwd"):
        with pytest.raises(ReadError, match="outside SOUNDTAG_ALLOWED_ROOTS$"):
            _read(storage, uri)
    assert _read(Storage(), file_uri(str(secret))) == secret.read_bytes()  # no list: no restriction


def test_the_review_page_serves_only_what_the_allow_lists_let_through(tmp_path):
    from review.audio import respond

    inside, secret = write(tmp_path / "archive" / "a.wav"), write(tmp_path / "private" / "secret.wav")
    storage = Storage(roots=[str(tmp_path / "archive")])
    assert respond(file_uri(str(inside)), storage, None).path == str(inside)
    for uri in (file_uri(str(secret)), "file:///etc/passwd"):
        with pytest.raises(ReadError, match="outside SOUNDTAG_ALLOWED_ROOTS$"):
            respond(uri, storage, None)


def test_device_files_are_never_read(tmp_path):
    with pytest.raises(ReadError, match="^/dev/zero: not a regular file$"):
        _read(Storage(), "file:///dev/zero")
    with pytest.raises(ReadError, match="^/dev/zero: not a regular file$"):
        _read(Storage(roots=["/dev"]), "/dev/zero")
    with pytest.raises(ReadError, match="not an absolute path"):
        _read(Storage(), "file://etc/passwd")


def test_objects_outside_the_allowed_buckets_are_refused(bucket, tmp_path):  # noqa: F811
    bucket.put("a.wav", b"audio")
    assert _read(Storage(buckets=[bucket.name]), f"s3://{bucket.name}/a.wav") == b"audio"
    with pytest.raises(ReadError, match=rf"^s3://{bucket.name}/a.wav: bucket '{bucket.name}' is not in "
                                        "SOUNDTAG_ALLOWED_BUCKETS$"):
        _read(Storage(buckets=["archive"]), f"s3://{bucket.name}/a.wav")


def test_datasets_on_disk_outside_the_allowed_roots_are_refused(tmp_path):
    from datasets import Dataset

    Dataset.from_dict({"audio": [write(tmp_path / "a.wav").read_bytes()]}).save_to_disk(tmp_path / "ds")
    uri = f"hf://{tmp_path}/ds:train/0#audio"
    assert _read(Storage(roots=[str(tmp_path)]), uri) == (tmp_path / "a.wav").read_bytes()
    with pytest.raises(ReadError, match=r"dataset outside SOUNDTAG_ALLOWED_ROOTS$"):
        _read(Storage(roots=[str(tmp_path / "elsewhere")]), uri)


def test_allow_lists_come_from_the_environment_as_json_or_commas(monkeypatch):
    monkeypatch.setenv("SOUNDTAG_ALLOWED_ROOTS", "/data/a, /data/b")
    monkeypatch.setenv("SOUNDTAG_ALLOWED_BUCKETS", '["archive", "field"]')
    settings = Settings()
    assert (settings.allowed_roots, settings.allowed_buckets) == (["/data/a", "/data/b"], ["archive", "field"])
    monkeypatch.setenv("SOUNDTAG_ALLOWED_ROOTS", "")
    assert Settings().allowed_roots == []


def test_run_fails_refused_files_alone(tmp_path, tiny_clap, sqlite_url):
    write(tmp_path / "open" / "a.wav")
    write(tmp_path / "closed" / "b.wav")
    proc = soundtag("run", str(tmp_path / "open"), str(tmp_path / "closed"), "--labels", LABELS, "--model",
                    str(tiny_clap), "--database", sqlite_url, env={"SOUNDTAG_ALLOWED_ROOTS": str(tmp_path / "open")})
    assert "1 labeled, 1 failed" in proc.stderr
    assert dict(query(sqlite_url, "select uri, coalesce(error, status) from files")) == {
        file_uri(str(tmp_path / "open" / "a.wav")): "done",
        file_uri(str(tmp_path / "closed" / "b.wav")): f"{tmp_path}/closed/b.wav: outside SOUNDTAG_ALLOWED_ROOTS"}


def _read(storage: Storage, uri: str) -> bytes:
    with storage.open(uri) as file:
        return file.read()


def test_a_labeled_file_swapped_for_a_link_out_of_the_root_is_read_by_no_command(tmp_path, tiny_clap, sqlite_url):
    archive = tmp_path / "archive"
    write(archive / "a.wav", seconds=2.0, freq=440.0)
    write(archive / "b.wav", seconds=2.0, freq=880.0)
    secret = write(tmp_path / "private" / "secret.wav", seconds=1.0, freq=1200.0)
    env = {"SOUNDTAG_ALLOWED_ROOTS": str(archive), "SOUNDTAG_INDEX_DIR": str(tmp_path / "index"),
           "HF_HOME": str(tmp_path / "hf")}
    model = ("--model", str(tiny_clap), "--database", sqlite_url)
    soundtag("run", str(archive), "--labels", LABELS, *model, env=env)
    (archive / "a.wav").unlink()
    (archive / "a.wav").symlink_to(secret)  # after labeling: the stored results still name it

    exported = soundtag("export", "--format", "hf", "--out", str(tmp_path / "ds"), "--database", sqlite_url, env=env)
    assert f"{archive}/a.wav" in exported.stderr and "outside SOUNDTAG_ALLOWED_ROOTS" in exported.stderr
    from datasets import Audio, load_from_disk

    rows = list(load_from_disk(str(tmp_path / "ds")).cast_column("audio", Audio(decode=False)))
    assert [row["uri"] for row in rows] == [file_uri(str(archive / "b.wav"))]
    assert secret.read_bytes() not in [row["audio"]["bytes"] for row in rows]

    relabeled = soundtag("relabel", "--labels", "owl,crow", *model, env=env)
    assert f"{archive}/a.wav" in relabeled.stderr and "outside SOUNDTAG_ALLOWED_ROOTS" in relabeled.stderr
    assert "done: 1 relabeled" in relabeled.stderr

    like = soundtag("search", "--like", str(archive / "a.wav"), *model, env=env, check=False)
    assert like.returncode == 1 and "outside SOUNDTAG_ALLOWED_ROOTS" in like.stderr
    assert len(like.stderr.strip().splitlines()) == 1


def test_a_jobs_recordings_are_read_only_from_under_its_sources(tmp_path):
    from review.audio import respond
    from review.clip import Clips

    archive, private = tmp_path / "archive", tmp_path / "private"
    inside, secret = write(archive / "a.wav"), write(private / "secret.wav")
    alone = write(tmp_path / "named" / "one.wav")
    storage = Storage(sources=[str(archive), str(alone)])
    assert _read(storage, file_uri(str(inside))) == inside.read_bytes()
    assert _read(storage, file_uri(str(alone))) == alone.read_bytes()
    assert Clips(storage).cut(file_uri(str(inside)), 0.0, 1.0).rate == 44100
    inside.unlink()
    inside.symlink_to(secret)  # labeled, then swapped for a link out
    alone.unlink()
    alone.symlink_to(secret)  # a file given alone, swapped too
    climbing = f"{archive}/../private/secret.wav"
    for uri, shown in [(file_uri(str(inside)), inside), (file_uri(str(alone)), alone),
                       (file_uri(climbing), climbing), ("file:///etc/passwd", "/etc/passwd")]:
        for read in (lambda: _read(storage, uri), lambda: respond(uri, storage, None),
                     lambda: Clips(storage).cut(uri, 0.0, 1.0)):
            with pytest.raises(ReadError, match=f"^{shown}: outside the job's sources$"):
                read()


def test_s3_recordings_are_read_only_under_the_jobs_prefixes():
    storage = Storage(sources=["s3://archive/field", "s3://whole"])
    for uri in ("s3://archive/field/a.wav", "s3://archive/field", "s3://whole/x/y.wav"):
        storage.check(uri)
    for uri in ("s3://archive/fieldwork/a.wav", "s3://archive/other.wav", "s3://wholesale/a.wav"):
        with pytest.raises(ReadError, match="outside the job's sources$"):
            storage.check(uri)
