"""Cutting a segment out of a recording for the review page: only the segment's frames are read
(a local file or a dataset row by seeking where its format allows, an S3 object by ranged reads),
mixed down and resampled as they stream through soundtag.audio, and sent as a mono 16-bit WAV at
the recording's own rate, capped at ``MAX_RATE``. The page decodes at that rate, so its
spectrogram reaches the recording's Nyquist frequency.

What one request can cost is bounded: a cut decodes at most ``MAX_SECONDS`` and ``MAX_SAMPLES``,
its memory is its 16-bit output (written as the blocks come), at most ``CONCURRENT_CUTS`` run at
once (the others wait their turn), and recent cuts are kept for a repeated request."""

from __future__ import annotations

import math
import os
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from soundtag.audio import open_stream
from soundtag.sources.storage import Storage

# The highest rate sent: 48 kHz of bandwidth shows bats and rodents; a 192 or 384 kHz
# recording is resampled down rather than sent at two or four times the bytes.
MAX_RATE = 96_000
# The longest clip sent, whatever was asked (a whole-file item of a long recording): about
# 115 MB at 96 kHz. Review such recordings by window or event instead.
MAX_SECONDS = 600.0
# The most samples (frames × channels) a cut decodes: 600 s of mono at 96 kHz, 75 s of 8 channels.
# Decoding time follows the samples, not the seconds: this keeps a many-channel recording's
# whole-file item near a second of work instead of ten.
MAX_SAMPLES = 57_600_000
# Cuts decoding at once; more wait. Each holds its output (up to 115 MB) and a CPU while it runs.
CONCURRENT_CUTS = 2
# Recent cuts kept for a repeated request (the page fetches an item again going back): a few
# dozen window segments; a cut larger than this is never kept.
CACHE_BYTES = 64 * 1024 * 1024
_WAV_HEADER = 44


@dataclass(frozen=True)
class Clip:
    data: memoryview  # a mono 16-bit WAV file
    rate: int  # of the clip: the recording's, at most MAX_RATE
    source_rate: int
    start_s: float  # where in the recording the clip begins

    def wav(self) -> memoryview:
        return self.data

    @property
    def samples(self) -> np.ndarray:
        """The clip as float32 samples, as a WAV reader gives them."""
        return np.frombuffer(self.data, np.int16, offset=_WAV_HEADER).astype(np.float32) / np.float32(32768)


class Clips:
    """Segments of the recordings ``storage`` reads, for one review server."""

    def __init__(self, storage: Storage, concurrent: int = CONCURRENT_CUTS, cache_bytes: int = CACHE_BYTES) -> None:
        self._storage = storage
        self._slots = threading.BoundedSemaphore(concurrent)
        self._cache: OrderedDict[tuple, Clip] = OrderedDict()
        self._cache_bytes = cache_bytes
        self._lock = threading.Lock()

    def cut(self, uri: str, start_s: float, end_s: float) -> Clip:
        """The recording at ``uri`` from ``start_s`` to ``end_s`` (clipped to the recording, to
        MAX_SECONDS and to MAX_SAMPLES). Waits while CONCURRENT_CUTS others decode. Raises
        ReadError or TransientReadError (storage, the allow-lists), AudioError (decoding)."""
        start_s = max(0.0, start_s)
        end_s = min(end_s, start_s + MAX_SECONDS)
        # Opened, so judged by the allow-lists, before the cache is asked: a recording refused
        # now is refused even if it was cut before.
        with self._storage.open_ranged(uri) as file:
            key = (uri, start_s, end_s, _version(file))
            found = self._cached(key)
            if found is None:
                with self._slots:
                    # A request ahead of this one may have cut the same segment while this one waited.
                    found = self._cached(key)
                    if found is None:
                        found = _cut(file, start_s, end_s)
                        self._keep(key, found)
        return found

    def _cached(self, key: tuple) -> Clip | None:
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
            return found

    def _keep(self, key: tuple, clip: Clip) -> None:
        if clip.data.nbytes > self._cache_bytes:
            return
        with self._lock:
            self._cache[key] = clip
            while sum(kept.data.nbytes for kept in self._cache.values()) > self._cache_bytes:
                self._cache.popitem(last=False)


def _version(file) -> tuple:
    """What changes when the file's bytes may have: a local file's size, modification time and
    inode; an S3 object's ETag and size (replaced, never edited in place: a new object of the same
    size has another ETag); else its size (a dataset row)."""
    try:
        found = os.fstat(file.fileno())
        return found.st_size, found.st_mtime_ns, found.st_ino
    except (AttributeError, OSError, ValueError):
        return getattr(file, "size", None) or file.seek(0, os.SEEK_END), getattr(file, "etag", None)


def _cut(file, start_s: float, end_s: float) -> Clip:
    with open_stream(file, MAX_RATE, upsample=False) as stream:
        end_s = min(end_s, start_s + MAX_SAMPLES / (stream.channels * stream.source_rate))
        # The 16-bit samples are written into the WAV file as they come: the clip's memory is
        # its output, however many channels or seconds went into it.
        room = math.ceil(max(0.0, end_s - start_s) * stream.sample_rate) + 16
        data = bytearray(_WAV_HEADER + 2 * room)
        pcm = np.frombuffer(data, np.int16, offset=_WAV_HEADER)
        n = 0
        for block in stream.span(start_s, end_s):
            block = block[:room - n]
            np.clip(np.rint(block * np.float32(32768)), -32768, 32767, out=block)
            pcm[n:n + len(block)] = block
            n += len(block)
        rate = stream.sample_rate
        data[:_WAV_HEADER] = _header(n, rate)
        return Clip(memoryview(data)[:_WAV_HEADER + 2 * n], rate, stream.source_rate, start_s)


def _header(frames: int, rate: int) -> bytes:
    """A canonical 44-byte RIFF header for ``frames`` of mono 16-bit PCM."""
    size = 2 * frames
    return (b"RIFF" + struct.pack("<I", 36 + size) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, 2 * rate, 2, 16)
            + b"data" + struct.pack("<I", size))
