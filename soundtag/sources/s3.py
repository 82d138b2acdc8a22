"""S3 objects, for the producer (listing a prefix) and the workers (fetching an object).

Credentials, region and endpoint come from the standard AWS chain and environment
(``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL`` for MinIO and other S3-compatible
stores ...); nothing here names a provider. Every failure becomes an S3Error: one line naming the
bucket or object, and whether waiting could help.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from soundtag.errors import S3Error

# HTTP codes and S3 error codes that mean "the service is busy or broken right now".
_THROTTLING = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
               "RequestThrottled", "RequestTimeout", "ServiceUnavailable", "InternalError"}

# Decoding seeks, so an object is read into a temporary file first: objects up to this size stay
# in memory, larger ones go to disk.
_SPOOL_IN_MEMORY = 16 * 1024 * 1024
_CHUNK = 1024 * 1024
# A ranged object's read-ahead: the first request after a seek, and the largest.
_AHEAD_FIRST, _AHEAD_MOST = 64 * 1024, 8 * 1024 * 1024


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` → ``("bucket", "some/key")``; the key may be empty."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise S3Error(f"{uri}: no bucket named; expected s3://BUCKET/PREFIX")
    return bucket, key


def make_client():
    """A new S3 client. Clients are thread-safe, sessions are not: each client gets its own
    session, so clients can be made from any thread."""
    import boto3
    from botocore.config import Config

    config = Config(
        # Standard mode retries throttling, 5xx and dropped connections with backoff (3 attempts
        # unless AWS_MAX_ATTEMPTS says otherwise); what still fails is reported as transient.
        retries={"mode": "standard"},
        # A dead endpoint should fail a listing in seconds, not after botocore's 60 s default.
        connect_timeout=10,
        read_timeout=60,
    )
    return boto3.session.Session().client("s3", config=config)


def list_objects(client, bucket: str, prefix: str) -> Iterator[dict]:
    """The listing entries (``Key``, ``ETag``, ``Size``, ``LastModified``) under ``prefix``,
    page by page. Raises S3Error."""
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            yield from page.get("Contents", ())
    except Exception as exc:  # noqa: BLE001 - botocore's errors are many; _problem() sorts them
        raise _problem(exc, client, bucket, prefix) from None


def open_object(client, bucket: str, key: str) -> BinaryIO:
    """The object as a seekable binary file: its body streamed into a temporary file, in memory
    while small and on disk past ``_SPOOL_IN_MEMORY``, so an object of any size takes bounded
    memory. Close it to delete it. Raises S3Error."""
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY, prefix="soundtag-s3-")
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        # botocore checks the length it streamed against Content-Length, so a body cut off
        # mid-way raises here instead of leaving a short file.
        for chunk in body.iter_chunks(_CHUNK):
            spool.write(chunk)
        spool.seek(0)
        return spool
    except Exception as exc:  # noqa: BLE001 - botocore's errors are many; _problem() sorts them
        spool.close()
        raise _problem(exc, client, bucket, key) from None


class RangedObject(io.RawIOBase):
    """An object as a seekable file that fetches only what is read, by ranged GETs: cutting a
    minute out of a day-long recording reads that minute (and its header), not the day. Reads
    that follow each other fetch ahead in doubling steps (from ``_AHEAD_FIRST`` to ``_AHEAD_MOST``),
    so a decoder's many small reads cost a few requests and at most twice the bytes they use; a
    seek starts small again. ``fetched`` counts the bytes received. Raises S3Error."""

    def __init__(self, client, bucket: str, key: str) -> None:
        super().__init__()
        self._client, self._bucket, self._key = client, bucket, key
        try:
            head = client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:  # noqa: BLE001 - botocore's errors are many; _problem() sorts them
            raise _problem(exc, client, bucket, key) from None
        self.size = head["ContentLength"]
        self.etag = head.get("ETag")  # changes with the content: what a cut of it is kept under
        self._position = 0
        self._held, self._held_at = b"", 0  # the bytes last fetched, and where they start
        self._ahead = _AHEAD_FIRST
        self.fetched = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer) -> int:
        wanted = min(len(buffer), self.size - self._position)
        if wanted <= 0:
            return 0
        offset = self._position - self._held_at
        if not 0 <= offset < len(self._held):
            sequential = bool(self._held) and self._position == self._held_at + len(self._held)
            self._ahead = min(self._ahead * 2, _AHEAD_MOST) if sequential else _AHEAD_FIRST
            self._fetch(self._position, max(wanted, self._ahead))
            offset = 0
        part = self._held[offset:offset + wanted]
        buffer[:len(part)] = part
        self._position += len(part)
        return len(part)

    def _fetch(self, first: int, length: int) -> None:
        last = min(first + length, self.size) - 1
        try:
            body = self._client.get_object(Bucket=self._bucket, Key=self._key, Range=f"bytes={first}-{last}")["Body"]
            self._held, self._held_at = body.read(), first
        except Exception as exc:  # noqa: BLE001 - botocore's errors are many; _problem() sorts them
            raise _problem(exc, self._client, self._bucket, self._key) from None
        self.fetched += len(self._held)


@dataclass(frozen=True)
class Part:
    """Bytes of an object as an HTTP Range request asked for them, as an HTTP answer: status 200
    (the whole object), 206 (the range, ``content_range`` says which) or 416 (outside the object)."""

    status: int
    chunks: Iterator[bytes]
    length: int
    content_range: str | None = None


def get_part(client, bucket: str, key: str, byte_range: str | None) -> Part:
    """The object, or the ``byte_range`` (an HTTP ``Range`` header) of it, streamed: S3 serves
    ranges itself, so seeking in an hour-long recording fetches only what is played. Raises S3Error."""
    from botocore.exceptions import ClientError

    try:
        answer = client.get_object(Bucket=bucket, Key=key, **({"Range": byte_range} if byte_range else {}))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "InvalidRange":
            raise _problem(exc, client, bucket, key) from None
        size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        return Part(416, iter(()), 0, f"bytes */{size}")
    except Exception as exc:  # noqa: BLE001 - botocore's errors are many; _problem() sorts them
        raise _problem(exc, client, bucket, key) from None
    ranged = answer.get("ContentRange")
    return Part(206 if ranged else 200, answer["Body"].iter_chunks(_CHUNK), answer["ContentLength"], ranged)


def _problem(exc: Exception, client, bucket: str, key: str) -> S3Error:
    """The one-line S3Error for a botocore failure on ``s3://bucket/key``."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
        SSLError,
    )

    uri = f"s3://{bucket}/{key}"
    endpoint = client.meta.endpoint_url
    reason = str(exc).strip().partition("\n")[0]
    if isinstance(exc, SSLError):  # a certificate problem does not go away by waiting
        return S3Error(f"{uri}: TLS error with endpoint {endpoint}: {reason}")
    if isinstance(exc, (ConnectionError, HTTPClientError)):  # refused, reset, DNS, timeouts, cut-off bodies
        return S3Error(f"{uri}: endpoint {endpoint} unreachable ({exc.__class__.__name__})", transient=True)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return S3Error(f"{uri}: no AWS credentials; set AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if not isinstance(exc, ClientError):
        return S3Error(f"{uri}: {exc.__class__.__name__}: {reason}")
    code = exc.response.get("Error", {}).get("Code", "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code == "NoSuchBucket":
        return S3Error(f"s3://{bucket}: bucket not found (endpoint {endpoint})")
    if code in {"NoSuchKey", "404"} or status == 404:
        return S3Error(f"{uri}: object not found")
    if status == 403:
        return S3Error(f"{uri}: access denied ({code}; endpoint {endpoint}): check the credentials and the "
                       "bucket policy")
    if code in _THROTTLING or status == 429 or status >= 500:
        return S3Error(f"{uri}: {code or 'error'} (HTTP {status}) from endpoint {endpoint}", transient=True)
    return S3Error(f"{uri}: {code} (HTTP {status}): {exc.response.get('Error', {}).get('Message', '')}".rstrip(": "))
