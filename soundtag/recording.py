"""When and where a recording was made, read from what recorders write: a WAV file's GUANO
(``guan``), BWF (``bext``) and AudioMoth comment (``LIST``/``INFO``/``ICMT``) chunks; a FLAC
file's Vorbis comments (``DATE``, ``COMMENT``) and an MP3 file's ID3 tag (``TDRC``/``TYER``,
``COMM``), as libsndfile reads them; then its name (``YYYYMMDD_HHMMSS`` with an optional prefix,
as AudioMoth and Song Meter name files, or a ``--time-pattern``). Never the file's mtime: a copy
changes it. What none of them says is None.

Times are returned in UTC. A time written without its zone (a bext chunk, a file name, a GUANO
timestamp without offset) is read in ``Rules.timezone``, UTC when none is given.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import BinaryIO
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from soundtag.errors import ConfigError

# A chunk larger than this is not metadata: it is skipped unread (a header is a few hundred bytes).
_MOST = 1 << 20
# YYYYMMDD_HHMMSS (or -, T between them), digits on neither side: AudioMoth's 20240501_053000.WAV,
# Song Meter's SMM01234_20240501_053000.wav.
_NAMED = re.compile(r"(?<![0-9])(\d{8})[_T-](\d{6})(?![0-9])")
_MOTH = re.compile(r"Recorded at (\d{2}):(\d{2}):(\d{2}) (\d{2})/(\d{2})/(\d{4}) \(UTC(?:([+-]\d{1,2})(?::(\d{2}))?)?\)")
# strptime directives a --time-pattern may hold, as the digits they match.
_DIRECTIVES = {"Y": r"\d{4}", "y": r"\d{2}", "m": r"\d{2}", "d": r"\d{2}", "H": r"\d{2}", "M": r"\d{2}",
               "S": r"\d{2}", "j": r"\d{3}", "f": r"\d{1,6}", "z": r"(?:Z|[+-]\d{2}:?\d{2})", "%": "%"}


@dataclass(frozen=True)
class Recording:
    recorded_at: datetime | None  # UTC
    site: str | None


@dataclass(frozen=True)
class Rules:
    """How to read what the headers do not say: ``time_pattern`` (strptime directives, found
    anywhere in the file name), ``timezone`` (IANA name) for times written without one, and
    ``site_pattern`` (a regular expression on the file's path; its first group, or the whole
    match, is the site)."""

    time_pattern: str | None = None
    timezone: str | None = None
    site_pattern: str | None = None

    def __post_init__(self) -> None:
        zone(self.timezone)
        if self.site_pattern:
            try:
                re.compile(self.site_pattern)
            except re.error as exc:
                raise ConfigError(f"--site-pattern {self.site_pattern!r}: {exc}") from None
        if self.time_pattern and not re.search(r"%[YyjmdHM]", self.time_pattern):
            raise ConfigError(f"--time-pattern {self.time_pattern!r}: holds no date or time directive "
                              f"(%Y %m %d %H %M %S …)")

    @classmethod
    def of(cls, options: dict) -> Rules:
        """The rules a job recorded in its options (db.jobs.create_job)."""
        return cls(options.get("time_pattern"), options.get("timezone"), options.get("site_pattern"))


def zone(name: str | None) -> timezone | ZoneInfo:
    if not name:
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--timezone {name!r}: not a time zone name; use one like Europe/Paris or UTC") from None


def metadata(file: BinaryIO) -> dict[str, bytes]:
    """What a file's header says of its recording, by kind: ``guan``, ``bext``, ``comment`` (a WAV
    file's ``ICMT``, a FLAC or MP3 file's comment), ``date`` (a FLAC or MP3 file's). Only the
    header is read; anything else (another format, a truncated header) gives none. The file is
    left where it was."""
    at = file.tell()
    try:
        head = file.read(12)
        if head[:4] == b"fLaC" or head[:3] == b"ID3":
            file.seek(at)
            return _tags(file)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            return {}
        return _chunks(file)
    finally:
        file.seek(at)


def _tags(file: BinaryIO) -> dict[str, bytes]:
    """A FLAC file's Vorbis comments or an MP3 file's ID3v2 tag, through libsndfile: it reads
    the header only, and gives ``DATE``/``TDRC``/``TYER`` as its date and ``COMMENT``/``COMM`` as
    its comment (an ID3 ``TDOR`` it does not give)."""
    import soundfile

    try:
        with soundfile.SoundFile(file) as sound:
            found = sound.copy_metadata()
    except (soundfile.LibsndfileError, RuntimeError, ValueError):
        return {}
    return {key: found[key].encode() for key in ("date", "comment") if found.get(key)}


def _chunks(file: BinaryIO) -> dict[str, bytes]:
    """A RIFF/WAVE file's ``guan``, ``bext`` and ``LIST`` INFO ``ICMT`` (as ``comment``) chunks,
    found by seeking from chunk to chunk past the 12-byte RIFF header: the audio is never read."""
    found: dict[str, bytes] = {}
    while True:
        header = file.read(8)
        if len(header) < 8:
            return found
        kind, size = header[:4], struct.unpack("<I", header[4:])[0]
        if kind in (b"guan", b"bext", b"LIST") and size <= _MOST:
            body = file.read(size)
            if kind == b"LIST":
                found.update(_info(body))
            else:
                found[kind.decode()] = body
        else:
            file.seek(size, 1)
        if size % 2:  # chunks are padded to an even length
            file.seek(1, 1)


def _info(body: bytes) -> dict[str, bytes]:
    if body[:4] != b"INFO":
        return {}
    found, at = {}, 4
    while at + 8 <= len(body):
        kind, size = body[at:at + 4], struct.unpack("<I", body[at + 4:at + 8])[0]
        if kind == b"ICMT":
            found["comment"] = body[at + 8:at + 8 + size]
        at += 8 + size + size % 2
    return found


def guano(body: bytes) -> dict[str, str]:
    """GUANO's fields: UTF-8 lines of ``Key: Value`` (namespaced keys keep their ``NS|``)."""
    fields = {}
    for line in body.decode("utf-8", "replace").strip("\x00").splitlines():
        key, colon, value = line.partition(":")
        if colon:
            fields[key.strip()] = value.strip()
    return fields


def _guano_time(fields: dict[str, str], local) -> datetime | None:
    text = fields.get("Timestamp")
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return _utc(when, local)


def _bext_time(body: bytes, local) -> datetime | None:
    """OriginationDate (10 bytes, yyyy-mm-dd; any separator) and OriginationTime (8 bytes,
    hh:mm:ss) after the 256-byte description and two 32-byte names."""
    stamp = body[320:338].decode("ascii", "replace")
    found = re.fullmatch(r"(\d{4}).(\d{2}).(\d{2})(\d{2}).(\d{2}).(\d{2})", stamp)
    if not found:
        return None
    try:
        return _utc(datetime(*map(int, found.groups())), local)
    except ValueError:
        return None


def _moth_time(body: bytes) -> datetime | None:
    """AudioMoth: ``Recorded at 05:30:00 01/05/2024 (UTC+2) by AudioMoth …``, the local time then
    its offset from UTC (hours, then minutes after a colon)."""
    found = _MOTH.search(body.decode("ascii", "replace"))
    if not found:
        return None
    hour, minute, second, day, month, year, offset_h, offset_m = found.groups()
    hours = int(offset_h or 0)
    minutes = int(offset_m or 0) * (-1 if hours < 0 or (offset_h or "").startswith("-") else 1)
    try:
        when = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                        tzinfo=timezone(timedelta(hours=hours, minutes=minutes)))
    except ValueError:
        return None
    return when.astimezone(timezone.utc)


def _name_time(name: str, pattern: str | None, local) -> datetime | None:
    stem = unquote(name).rsplit("/", 1)[-1].rsplit(".", 1)[0]
    if pattern is None:
        found = _NAMED.search(stem)
        text, fmt = (found.group(1) + found.group(2), "%Y%m%d%H%M%S") if found else (None, None)
    else:
        regex = re.sub(r"%(.)|([^%]+)", lambda m: _DIRECTIVES.get(m.group(1), re.escape(m.group(0)))
                       if m.group(1) else re.escape(m.group(2)), pattern)
        found = re.search(regex, stem)
        text, fmt = (found.group(0), pattern) if found else (None, None)
    if text is None:
        return None
    try:
        return _utc(datetime.strptime(text, fmt), local)
    except ValueError:
        return None


def _utc(when: datetime, local) -> datetime:
    if when.tzinfo is None:
        when = when.replace(tzinfo=local)
    return when.astimezone(timezone.utc)


def _tag_time(date: bytes, local) -> datetime | None:
    """A Vorbis ``DATE`` or ID3 ``TDRC`` (ISO 8601: ``2024-05-01T06:30:00``, or with a space):
    only one that holds a time of day tells when a recording was made; a bare date or year is
    no recording time."""
    text = date.decode("utf-8", "replace").strip().replace("Z", "+00:00")
    if not re.match(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", text):
        return None
    try:
        return _utc(datetime.fromisoformat(text), local)
    except ValueError:
        return None


def recorded_at(found: dict[str, bytes], name: str, rules: Rules) -> datetime | None:
    """The first of: GUANO's Timestamp, bext's origination, a FLAC or MP3 file's date, an
    AudioMoth comment, the file name."""
    local = zone(rules.timezone)
    return ((_guano_time(guano(found["guan"]), local) if "guan" in found else None)
            or (_bext_time(found["bext"], local) if "bext" in found else None)
            or (_tag_time(found["date"], local) if "date" in found else None)
            or (_moth_time(found["comment"]) if "comment" in found else None)
            or _name_time(name, rules.time_pattern, local))


def site(uri: str, roots: list[str], rules: Rules, found: dict[str, bytes] | None = None) -> str | None:
    """The first of: ``site_pattern``'s match in the path, the first folder below the longest
    root (a walked source, as a URI) holding the file, GUANO's ``Loc Position``."""
    path = unquote(uri)
    if rules.site_pattern:
        match = re.search(rules.site_pattern, path)
        if match:
            return match.group(1) if match.groups() else match.group(0)
    for root in sorted(roots, key=len, reverse=True):
        folder = unquote(root).rstrip("/") + "/"
        if path.startswith(folder):
            parts = path[len(folder):].split("/")
            if len(parts) > 1:
                return parts[0]
            break
    position = guano(found["guan"]).get("Loc Position") if found and "guan" in found else None
    return " ".join(position.split()) if position else None


def read(file: BinaryIO, uri: str, roots: list[str], rules: Rules) -> Recording:
    """When and where the recording at ``uri`` (open as ``file``) was made."""
    found = metadata(file)
    return Recording(recorded_at(found, uri, rules), site(uri, roots, rules, found))
