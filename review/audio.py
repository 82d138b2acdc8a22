"""Serving a recording's bytes to the page with HTTP Range support, wherever the file lives."""

from __future__ import annotations

import mimetypes
import re

from starlette.responses import FileResponse, Response, StreamingResponse

from soundtag.sources import uris
from soundtag.sources.storage import Storage

# What the page's <audio> element and wavesurfer's decoder are told; browsers sniff the rest.
TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/ogg",
         ".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".aac": "audio/aac", ".webm": "audio/webm"}


def media_type(uri: str) -> str:
    suffix = "." + uri.rsplit(".", 1)[-1].lower() if "." in uri.rsplit("/", 1)[-1] else ""
    return TYPES.get(suffix) or mimetypes.guess_type("x" + suffix)[0] or "application/octet-stream"


def respond(uri: str, storage: Storage, range_header: str | None) -> Response:
    """The file at ``uri`` as a response that honours Range requests (206): a local file streamed
    from disk by Starlette's FileResponse, an S3 object's range streamed from S3, a dataset row
    (a clip, in memory already) sliced. Raises ReadError (or TransientReadError) when it cannot be
    read or may not be (the allow-lists)."""
    if uri.startswith(uris.FILE):
        storage.check(uri)
        return FileResponse(uris.path_of(uri), media_type=media_type(uri))
    if uri.startswith("s3://"):
        part = storage.s3_part(uri, range_header)
        headers = {"Accept-Ranges": "bytes", "Content-Length": str(part.length)}
        if part.content_range:
            headers["Content-Range"] = part.content_range
        return StreamingResponse(part.chunks, status_code=part.status, media_type=media_type(uri), headers=headers)
    return _sliced(storage.read(uri), range_header, media_type(uri))


def _sliced(data: bytes, range_header: str | None, kind: str) -> Response:
    size = len(data)
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", (range_header or "").strip())
    if not match or match.groups() == ("", ""):
        return Response(data, media_type=kind, headers={"Accept-Ranges": "bytes"})
    first, last = match.groups()
    start, end = (size - int(last), size - 1) if not first else (int(first), min(int(last or size - 1), size - 1))
    start = max(start, 0)
    if start > end or start >= size:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    return Response(data[start:end + 1], status_code=206, media_type=kind,
                    headers={"Content-Range": f"bytes {start}-{end}/{size}", "Accept-Ranges": "bytes"})
