"""Serving a recording's bytes to the page with HTTP Range support, wherever the file lives.

A recording's name says nothing about its bytes (``x.html`` may be a WAV, ``x.wav`` an HTML
page), so its content type comes from the format its first bytes decode as, and every answer
carries ``nosniff`` and a sandboxing CSP (set by review.server): a browser opening it from a
link never runs it as a page of the review's origin.
"""

from __future__ import annotations

import io
import re
from typing import BinaryIO

from starlette.responses import FileResponse, Response, StreamingResponse

from soundtag.sources import uris
from soundtag.sources.storage import Storage

UNKNOWN = "application/octet-stream"
# Enough of a file for soundfile and FFmpeg to name its format from the header.
_HEAD = 64 * 1024
_SOUNDFILE_TYPES = {"WAV": "audio/wav", "WAVEX": "audio/wav", "RF64": "audio/wav", "FLAC": "audio/flac",
                    "OGG": "audio/ogg", "MP3": "audio/mpeg", "MPEG": "audio/mpeg", "AIFF": "audio/aiff"}
_FFMPEG_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg", "mp3": "audio/mpeg",
                 "aac": "audio/aac", "mov,mp4,m4a,3gp,3g2,mj2": "audio/mp4", "matroska,webm": "audio/webm"}
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")
# A bound of more digits is beyond any file (and int() refuses 4,300 digits and more).
_DIGITS = 18


def media_type(head: BinaryIO) -> str:
    """The ``audio/*`` type of the format the bytes of ``head`` (a seekable file, or its first
    bytes) decode as, by soundfile and else FFmpeg; ``application/octet-stream`` for anything else."""
    import soundfile as sf

    try:
        return _SOUNDFILE_TYPES.get(sf.info(head).format, UNKNOWN)
    except Exception:  # noqa: BLE001 - not a format libsndfile knows; FFmpeg may
        pass
    import av

    head.seek(0)
    try:
        with av.open(head, "r") as container:
            if container.streams.audio:
                return _FFMPEG_TYPES.get(container.format.name, UNKNOWN)
    except Exception:  # noqa: BLE001 - not audio FFmpeg knows either
        pass
    return UNKNOWN


def respond(uri: str, storage: Storage, range_header: str | None) -> Response:
    """The file at ``uri`` as a response that honours Range requests (206): a local file streamed
    from disk by Starlette's FileResponse, an S3 object's range streamed from S3, a dataset row
    (a clip, in memory already) sliced. Raises ReadError (or TransientReadError) when it cannot be
    read or may not be (the allow-lists)."""
    if uri.startswith(uris.FILE):
        with storage.open(uri) as file:
            kind = media_type(file)
        return FileResponse(uris.path_of(uri), media_type=kind)
    if uri.startswith("s3://"):
        kind = media_type(io.BytesIO(b"".join(storage.s3_part(uri, f"bytes=0-{_HEAD - 1}").chunks)))
        part = storage.s3_part(uri, range_header)
        headers = {"Accept-Ranges": "bytes", "Content-Length": str(part.length)}
        if part.content_range:
            headers["Content-Range"] = part.content_range
        return StreamingResponse(part.chunks, status_code=part.status, media_type=kind, headers=headers)
    data = storage.read(uri)
    return _sliced(data, range_header, media_type(io.BytesIO(data)))


def _sliced(data: bytes, range_header: str | None, kind: str) -> Response:
    size = len(data)
    match = _RANGE.fullmatch((range_header or "").strip())
    if not match or match.groups() == ("", ""):
        return Response(data, media_type=kind, headers={"Accept-Ranges": "bytes"})
    first, last = match.groups()
    if max(len(first), len(last)) > _DIGITS:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    start, end = (size - int(last), size - 1) if not first else (int(first), min(int(last or size - 1), size - 1))
    start = max(start, 0)
    if start > end or start >= size:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    return Response(data[start:end + 1], status_code=206, media_type=kind,
                    headers={"Content-Range": f"bytes {start}-{end}/{size}", "Accept-Ranges": "bytes"})
