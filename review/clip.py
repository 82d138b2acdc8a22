"""Cutting a segment out of a recording for the review page: only the segment's frames are read
(a local file or a dataset row by seeking, an S3 object by ranged reads) and only they are sent,
as a mono 16-bit WAV at the recording's own rate, capped at ``MAX_RATE``. The page decodes at
that rate, so its spectrogram reaches the recording's Nyquist frequency."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from soundtag.errors import AudioError, ReadError, S3Error, TransientReadError, first_line
from soundtag.sources.storage import Storage

# The highest rate sent: 48 kHz of bandwidth shows bats and rodents; a 192 or 384 kHz
# recording is resampled down rather than sent at two or four times the bytes.
MAX_RATE = 96_000
# The longest clip sent, whatever was asked (a whole-file item of a long recording): about
# 115 MB at 96 kHz. Review such recordings by window or event instead.
MAX_SECONDS = 600.0


@dataclass(frozen=True)
class Clip:
    samples: np.ndarray  # float32, mono
    rate: int  # of ``samples``: the recording's, at most MAX_RATE
    source_rate: int
    start_s: float  # where in the recording ``samples`` begin

    def wav(self) -> bytes:
        import soundfile as sf

        out = io.BytesIO()
        sf.write(out, self.samples, self.rate, format="WAV", subtype="PCM_16")
        return out.getvalue()


def cut(storage: Storage, uri: str, start_s: float, end_s: float) -> Clip:
    """The recording at ``uri`` from ``start_s`` to ``end_s`` (clipped to the recording, and to
    MAX_SECONDS). Raises ReadError or TransientReadError (storage), AudioError (decoding)."""
    start_s = max(0.0, start_s)
    end_s = min(end_s, start_s + MAX_SECONDS)
    with storage.open_ranged(uri) as file:
        samples, rate = _seek_and_read(file, start_s, end_s)
    if rate > MAX_RATE:
        import soxr

        return Clip(soxr.resample(samples, rate, MAX_RATE, quality="HQ").astype(np.float32), MAX_RATE, rate, start_s)
    return Clip(samples, rate, rate, start_s)


def _seek_and_read(file, start_s: float, end_s: float) -> tuple[np.ndarray, int]:
    import soundfile as sf

    watched = _Watched(file)
    try:
        with sf.SoundFile(watched) as f:
            first = min(int(round(start_s * f.samplerate)), f.frames)
            f.seek(first)
            block = f.read(max(0, int(round(end_s * f.samplerate)) - first), dtype="float32", always_2d=True)
            watched.raise_failure()
            return block.mean(axis=1, dtype=np.float32), f.samplerate
    except sf.LibsndfileError:
        watched.raise_failure()
        file.seek(0)
    return _decode_through(file, start_s, end_s)


class _Watched:
    """A file for libsndfile's callbacks, which swallow exceptions (a failed ranged read would
    end the cut short, silently): the first failure is kept, and raised after."""

    def __init__(self, file) -> None:
        self._file = file
        self.failure: Exception | None = None

    def __getattr__(self, name: str):
        method = getattr(self._file, name)

        def watched(*args):
            try:
                return method(*args)
            except Exception as exc:
                self.failure = self.failure or exc
                raise

        return watched

    def raise_failure(self) -> None:
        exc = self.failure
        if exc is None:
            return
        if isinstance(exc, S3Error):
            raise (TransientReadError if exc.transient else ReadError)(str(exc)) from None
        raise ReadError(f"cannot read: {first_line(str(exc))}") from None


def _decode_through(file, start_s: float, end_s: float) -> tuple[np.ndarray, int]:
    """Formats libsndfile cannot seek in (m4a, aac...): decoded by FFmpeg from the start, mixed
    down to mono at the recording's rate, the frames before ``start_s`` dropped as they come, so
    memory stays bounded (time grows with ``start_s``)."""
    import av

    kept, seen = [], 0
    try:
        with av.open(file, mode="r") as container:
            if not container.streams.audio:
                raise AudioError("cannot cut a segment: no audio stream")
            stream = container.streams.audio[0]
            rate = stream.rate
            first, last = int(start_s * rate), int(end_s * rate)
            mono = av.AudioResampler(format="flt", layout="mono", rate=rate)
            for frame in container.decode(stream):
                for out in mono.resample(frame):
                    block = out.to_ndarray()[0]
                    kept.append(block[max(0, first - seen):max(0, last - seen)])
                    seen += len(block)
                if seen >= last:
                    break
    except (av.error.FFmpegError, ValueError, IndexError) as exc:
        raise AudioError(f"cannot cut a segment: not a readable audio file ({first_line(str(exc))})") from None
    return (np.concatenate(kept).astype(np.float32) if kept else np.zeros(0, np.float32)), rate
