"""S3 buckets as sources, against a real S3 HTTP endpoint on localhost (moto's server)."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from soundtag.errors import ReadError, SourceError, TransientReadError
from soundtag.sources.storage import Storage
from soundtag.sources.walk import walk
from tests.audio_files import write
from tests.conftest import free_port, query, soundtag

LABELS = "dog barking,rain,siren"


@pytest.fixture(scope="module")
def s3_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass
class Bucket:
    name: str
    endpoint: str
    client: object
    env: dict  # what a soundtag subprocess needs to reach the endpoint

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.name, Key=key, Body=body)

    def put_audio(self, key: str, tmp_path, **tone) -> None:
        self.put(key, write(tmp_path / "upload" / key, **tone).read_bytes())


def _aws_env(endpoint: str, tmp_path) -> dict:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials")}


@pytest.fixture
def bucket(s3_server, tmp_path, monkeypatch) -> Bucket:
    """A fresh bucket; the AWS environment of this process and of soundtag subprocesses points at it."""
    import boto3

    env = _aws_env(s3_server, tmp_path)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    client = boto3.session.Session().client("s3")
    name = f"archive-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=name)
    return Bucket(name, s3_server, client, env)


def test_run_labels_an_s3_prefix_and_relabels_changed_objects(bucket, tmp_path, tiny_clap, sqlite_url):
    bucket.put_audio("field/a.wav", tmp_path, seconds=2.0)
    bucket.put_audio("field/night/b.flac", tmp_path, seconds=3.0, rate=48000, channels=2)
    bucket.put_audio("field/c.mp3", tmp_path, seconds=2.0, rate=22050)
    bucket.put("field/notes.txt", b"not audio")
    bucket.put_audio("fieldwork/elsewhere.wav", tmp_path)  # shares the prefix's letters, not its folder
    args = ("run", f"s3://{bucket.name}/field", "--labels", LABELS, "--model", str(tiny_clap), "--database", sqlite_url)

    proc = soundtag(*args, env=bucket.env)
    assert "3 labeled, 0 failed, 0 skipped" in proc.stderr

    files = query(sqlite_url, "select uri, status, fingerprint, size_bytes, channels from files order by uri")
    assert [f.uri for f in files] == [f"s3://{bucket.name}/field/{k}" for k in ("a.wav", "c.mp3", "night/b.flac")]
    assert all(f.status == "done" and f.fingerprint.startswith("etag:") for f in files)
    assert files[2].channels == 2 and files[2].size_bytes > 0
    top = query(sqlite_url, "select uri, label from file_labels where rank = 1")
    assert {row.uri for row in top} == {f.uri for f in files}

    bucket.put_audio("field/a.wav", tmp_path, seconds=3.0, freq=880.0)
    assert "1 labeled, 0 failed, 2 skipped" in soundtag(*args, env=bucket.env).stderr


def test_listing_pages_through_10000_objects(bucket):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    # Seeded in the server's own store: 10,000 PUTs over HTTP take half a minute and test
    # nothing the listing does not. The listing itself goes over HTTP, 1,000 keys a page.
    store = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for i in range(10_000):
        store.put_object(bucket.name, f"many/{i:05d}.wav", b"x")
    store.put_object(bucket.name, "many/readme.md", b"x")

    refs = list(walk(f"s3://{bucket.name}/many/"))
    assert len(refs) == len({r.uri for r in refs}) == 10_000
    assert refs[0].uri == f"s3://{bucket.name}/many/00000.wav" and refs[-1].uri.endswith("/09999.wav")


def test_prefix_reads_like_a_folder(bucket):
    for key in ("dir/a.wav", "dir/sub/b.FLAC", "dir/notes.txt", "dir/", "dirty/c.wav", "blob.bin"):
        bucket.put(key, b"x")
    names = lambda source, pattern=None: sorted(r.uri.split("/", 3)[3] for r in walk(source, pattern))  # noqa: E731

    assert names(f"s3://{bucket.name}/dir") == names(f"s3://{bucket.name}/dir/") == ["dir/a.wav", "dir/sub/b.FLAC"]
    assert names(f"s3://{bucket.name}/dir/", "*.txt") == ["dir/notes.txt"]
    assert names(f"s3://{bucket.name}/blob.bin") == ["blob.bin"]  # named in full: taken as asked
    assert names(f"s3://{bucket.name}") == ["dir/a.wav", "dir/sub/b.FLAC", "dirty/c.wav"]


def test_missing_bucket_is_one_line(bucket, tmp_path, sqlite_url):
    proc = soundtag("run", "s3://no-such-bucket/x/", "--labels", "a,b", "--database", sqlite_url, env=bucket.env,
                    check=False)
    assert proc.returncode == 1
    assert f"error: s3://no-such-bucket: bucket not found (endpoint {bucket.endpoint})" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreachable_endpoint_is_one_line(tmp_path, sqlite_url):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    proc = soundtag("run", "s3://archive/x/", "--labels", "a,b", "--database", sqlite_url,
                    env=_aws_env(endpoint, tmp_path), check=False)
    assert proc.returncode == 1
    assert f"error: s3://archive/x/: endpoint {endpoint} unreachable" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_access_denied_is_one_line_when_listing_and_reading(bucket, monkeypatch):
    import boto3

    bucket.put("secret/a.wav", b"x")
    iam = boto3.session.Session().client("iam")

    def reset_auth(count: bytes) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{bucket.endpoint}/moto-api/reset-auth", data=count,
                                                      headers={"Content-Type": "text/plain"}))

    # moto checks credentials and IAM policies once this many requests have passed: the two
    # that make a user, who has no policy and so may do nothing.
    reset_auth(b"2")
    try:
        iam.create_user(UserName="nobody")
        key = iam.create_access_key(UserName="nobody")["AccessKey"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        with pytest.raises(SourceError, match=rf"^s3://{bucket.name}/secret/: access denied \(AccessDenied; endpoint"):
            list(walk(f"s3://{bucket.name}/secret/"))
        with pytest.raises(ReadError, match=rf"^s3://{bucket.name}/secret/a.wav: access denied"):
            Storage().open(f"s3://{bucket.name}/secret/a.wav")
    finally:
        reset_auth(b"inf")


def test_object_deleted_after_listing_fails_alone(bucket, tmp_path, tiny_clap, sqlite_url):
    from db.schema import engine_for, ensure_schema
    from soundtag.settings import Settings
    from soundtag.taxonomy import taxonomy_from_csv
    from worker.runner import run

    for name in ("a.wav", "b.wav", "c.wav"):
        bucket.put_audio(f"clips/{name}", tmp_path)
    refs = list(walk(f"s3://{bucket.name}/clips/"))
    bucket.client.delete_object(Bucket=bucket.name, Key="clips/b.wav")

    settings = Settings(model=str(tiny_clap), database_url=sqlite_url, device="cpu")
    engine = engine_for(sqlite_url)
    ensure_schema(engine)
    info = run(engine, refs, taxonomy_from_csv(LABELS), settings, sources=["s3"])
    assert (info.done, info.failed) == (2, 1)

    files = dict(query(sqlite_url, "select uri, coalesce(error, status) from files"))
    prefix = f"s3://{bucket.name}/clips"
    assert files == {f"{prefix}/a.wav": "done", f"{prefix}/b.wav": f"{prefix}/b.wav: object not found",
                     f"{prefix}/c.wav": "done"}


def test_unreachable_endpoint_at_read_time_is_transient_not_a_file_failure(tmp_path, monkeypatch):
    for key, value in _aws_env(f"http://127.0.0.1:{free_port()}", tmp_path).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(TransientReadError, match="unreachable") as caught:
        Storage().open("s3://archive/a.wav")
    assert not isinstance(caught.value, ReadError)


@pytest.mark.parametrize("code, status, transient", [
    ("SlowDown", 503, True), ("InternalError", 500, True), ("TooManyRequestsException", 429, True),
    ("AccessDenied", 403, False), ("NoSuchKey", 404, False), ("InvalidObjectState", 403, False),
])
def test_s3_errors_are_sorted_into_transient_and_permanent(code, status, transient):
    from botocore.exceptions import ClientError

    from soundtag.sources import s3

    def refuse(**_):
        raise ClientError({"Error": {"Code": code, "Message": "..."}, "ResponseMetadata": {"HTTPStatusCode": status}},
                          "GetObject")

    client = SimpleNamespace(meta=SimpleNamespace(endpoint_url="https://s3.example"), get_object=refuse)
    with pytest.raises(s3.S3Error) as caught:
        s3.open_object(client, "b", "k")
    assert caught.value.transient is transient
    assert str(caught.value).startswith("s3://b/k: ") and "\n" not in str(caught.value)


def test_transient_read_error_stops_the_batch_instead_of_failing_files(tiny_clap, export_dir):
    from model.classifier import load_classifier
    from soundtag.taxonomy import taxonomy_from_csv
    from worker.labeling import Labeler

    classifier = load_classifier(str(tiny_clap), export_dir)
    labeler = Labeler(classifier)

    def storage_down(uri: str) -> bytes:
        raise TransientReadError(f"{uri}: endpoint unreachable")

    def missing(uri: str) -> bytes:
        raise ReadError(f"{uri}: object not found")

    taxonomy = classifier.label_embeddings(taxonomy_from_csv(LABELS))
    assert [r.error for r in labeler.label(["s3://b/a.wav"], taxonomy, missing)] == ["s3://b/a.wav: object not found"]
    with pytest.raises(TransientReadError):
        list(labeler.label(["s3://b/a.wav", "s3://b/b.wav"], taxonomy, storage_down))


def test_object_larger_than_the_in_memory_spool_is_labeled_like_the_local_file(bucket, tmp_path, tiny_clap, export_dir):
    import hashlib

    import numpy as np

    from model.classifier import load_classifier
    from soundtag.sources import s3
    from soundtag.sources.storage import open_local
    from soundtag.taxonomy import taxonomy_from_csv
    from worker.labeling import Labeler

    local = write(tmp_path / "big.wav", seconds=200.0, rate=48000, channels=2)  # 38 MB of PCM
    assert local.stat().st_size > s3._SPOOL_IN_MEMORY
    bucket.put("big.wav", local.read_bytes())
    classifier = load_classifier(str(tiny_clap), export_dir)
    labeler = Labeler(classifier)
    taxonomy = classifier.label_embeddings(taxonomy_from_csv(LABELS))

    (remote,) = labeler.label([f"s3://{bucket.name}/big.wav"], taxonomy, Storage().open)
    (expected,) = labeler.label([local.as_uri()], taxonomy, open_local)
    assert remote.ok, remote.error
    assert remote.content_hash == hashlib.sha256(local.read_bytes()).hexdigest()
    assert (remote.duration_s, remote.sample_rate, remote.channels) == (200.0, 48000, 2)
    assert [(s.start_s, s.end_s) for s in remote.segments] == [(s.start_s, s.end_s) for s in expected.segments]
    np.testing.assert_array_equal(remote.scores, expected.scores)


def test_review_page_streams_an_s3_recording_by_ranges(bucket, tmp_path, tiny_clap, sqlite_url):
    import json

    from tests.test_review import Server

    bucket.put_audio("field/a.flac", tmp_path, seconds=3.0)
    body = bucket.client.get_object(Bucket=bucket.name, Key="field/a.flac")["Body"].read()
    soundtag("run", f"s3://{bucket.name}/field", "--labels", LABELS, "--model", str(tiny_clap), "--database",
             sqlite_url, env=bucket.env)
    review = Server(tmp_path, "--database", sqlite_url, env=bucket.env)
    try:
        review.wait_ready()
        with urllib.request.urlopen(review.url + "/api/items", timeout=10) as answer:
            (item,) = json.load(answer)["items"]

        def get(byte_range: str | None):
            request = urllib.request.Request(f"{review.url}/audio/{item['file']}",
                                             headers={"Range": byte_range} if byte_range else {})
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    return answer.status, answer.headers.get("Content-Range"), answer.read()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.headers.get("Content-Range"), b""

        assert get(None) == (200, None, body)
        assert get("bytes=100-1099") == (206, f"bytes 100-1099/{len(body)}", body[100:1100])
        assert get("bytes=-10") == (206, f"bytes {len(body) - 10}-{len(body) - 1}/{len(body)}", body[-10:])
        assert get(f"bytes={len(body) + 5}-") == (416, f"bytes */{len(body)}", b"")
    finally:
        review.stop()
