"""Audio files to model-rate mono windows: decode, downmix, resample, split, block by block.

A file is decoded in blocks of bounded size and each block goes through downmixing, soxr's
streaming resampler and the windower before the next is read, so memory does not grow with a
file's length, rate or channel count. Pure functions and small stateful transformers of their
input; nothing here knows about the model beyond its rate and window.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from soundtag.errors import AudioError, ReadError, TransientReadError, first_line


@dataclass(frozen=True)
class Limits:
    """What a file may declare, and decode to, before it is refused. Memory is bounded by
    streaming whatever a file holds; these bound the time a file can take, so a few hundred KB
    that expand to hours of many-channel audio (a decompression bomb) fail in milliseconds."""

    max_channels: int = 64
    max_rate: int = 768_000
    max_duration_s: float = float("inf")


@dataclass(frozen=True)
class Decoded:
    samples: np.ndarray  # float32, mono, at `sample_rate`
    sample_rate: int  # the rate of `samples`
    source_rate: int  # the file's own rate
    channels: int  # the file's own channel count
    duration_s: float


@dataclass(frozen=True)
class AudioWindow:
    start_s: float
    end_s: float
    samples: np.ndarray


# A decoder asked for the blocks of (frames, channels) float32 at the file's rate from a frame on,
# up to another (or the end: None): the frame its blocks start at (the one asked, or 0 where it
# cannot seek) and the blocks, which may run past the frame asked to end at.
_Native = Callable[[int, int | None], tuple[int, Iterator[np.ndarray]]]
# A decoder, the file's rate, channels, closer.
_Opened = tuple[_Native, int, int, Callable[[], None]]
# Samples (frames × channels) per decoded block: 4 MB of float32 whatever the channel count.
_BLOCK_SAMPLES = 1 << 20
# libsndfile error codes: unrecognised format and unsupported encoding are left to FFmpeg; any
# other error means libsndfile knows the format and the file is broken.
_SF_NOT_MINE = {1, 4}
_TRUNCATED_DATA = re.compile(r"^data\s*:\s*(\d+) \(should be (\d+)\)", re.MULTILINE)
# An Ogg page is at most 27 + 255 + 255 * 255 bytes, so the last page starts within this tail.
_OGG_MAX_PAGE = 65_307


class Stream:
    """An open audio file: what it declares, and its audio as mono float32 blocks at
    ``sample_rate``. ``duration_s`` counts the frames decoded so far, so it is the file's once
    ``blocks()`` is exhausted. Use as a context manager; ``open_stream`` makes one."""

    def __init__(self, native: _Native, source_rate: int, channels: int,
                 target_rate: int, limits: Limits, close: Callable[[], None] = lambda: None,
                 watched: _Watched | None = None):
        self._native = native
        self._close = close
        self._watched = watched
        self._decoding: Iterator[np.ndarray] | None = None
        self.source_rate = source_rate
        self.channels = channels
        self.sample_rate = target_rate
        self.limits = limits
        self.frames = 0

    @property
    def duration_s(self) -> float:
        return self.frames / self.source_rate

    def blocks(self) -> Iterator[np.ndarray]:
        """Downmixed, resampled blocks. Raises AudioError when the file turns out broken or
        truncated (possibly after some blocks), or decodes past the duration limit."""
        return self.span(0.0)

    def span(self, start_s: float, end_s: float | None = None) -> Iterator[np.ndarray]:
        """The blocks of the audio from ``start_s`` to ``end_s`` (or the file's end, whichever
        comes first), reached by seeking where the format allows (libsndfile's), else by decoding
        from the start and dropping what comes before. Raises AudioError as ``blocks`` does, and
        ReadError or TransientReadError when reading the file itself failed."""
        try:
            yield from self._span(start_s, end_s)
        except Exception:
            self._raise_read_failure()
            raise
        # libsndfile takes a failed read for the end of the file: the blocks stop short, silently.
        self._raise_read_failure()

    def _span(self, start_s: float, end_s: float | None) -> Iterator[np.ndarray]:
        import soxr

        first = max(0, round(start_s * self.source_rate))
        last = None if end_s is None else round(end_s * self.source_rate)
        # The streaming resampler at the quality one-shot resampling used: its output equals
        # soxr.resample's on the whole signal, however the input is cut.
        resampler = (soxr.ResampleStream(self.source_rate, self.sample_rate, 1, dtype="float32", quality="HQ")
                     if self.source_rate != self.sample_rate else None)
        position, self._decoding = self._native(first, last)
        for block in self._decoding:
            self.frames = position + len(block)
            # Headers can lie (PyAV streams, MP3 estimates): the decoded length is checked too.
            if self.duration_s > self.limits.max_duration_s:
                raise AudioError(f"decodes to more than {self.limits.max_duration_s:.0f} s, over the "
                                 f"{self.limits.max_duration_s:.0f} s limit (SOUNDTAG_MAX_DURATION_S)")
            kept = block[max(0, first - position):len(block) if last is None else max(0, last - position)]
            position += len(block)
            if len(kept):
                mono = downmix(kept)
                if not np.isfinite(mono).all():
                    raise AudioError("samples are NaN or infinite")
                out = resampler.resample_chunk(mono) if resampler else mono
                if len(out):
                    yield out
            if last is not None and position >= last:
                break
        if self.frames == 0 and first == 0:
            raise AudioError("no audio samples")
        if resampler:
            tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            if len(tail):
                yield tail

    def _raise_read_failure(self) -> None:
        if self._watched is not None:
            self._watched.raise_failure()

    def close(self) -> None:
        if self._decoding is not None:
            self._decoding.close()
        self._close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Watched:
    """A file for libsndfile's callbacks, which swallow exceptions (a failed ranged read of an
    S3 object would end the audio short, silently): the first failure is kept, to be raised."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self.failure: Exception | None = None

    def read(self, *args):
        return self._watch(self._file.read, *args)

    def readinto(self, *args):
        return self._watch(self._file.readinto, *args)

    def seek(self, *args):
        return self._watch(self._file.seek, *args)

    def tell(self):
        return self._watch(self._file.tell)

    def __getattr__(self, name: str):
        return getattr(self._file, name)

    def _watch(self, method, *args):
        try:
            return method(*args)
        except Exception as exc:
            self.failure = self.failure or exc
            raise

    def raise_failure(self) -> None:
        """Raise the first failure of the file's own reads as ReadError, or TransientReadError
        when it says waiting may help (an S3Error's ``transient``)."""
        exc = self.failure
        if exc is None:
            return
        if getattr(exc, "transient", False):
            raise TransientReadError(str(exc)) from None
        raise ReadError(f"cannot read: {first_line(exc)}") from None


def open_stream(file: BinaryIO, target_rate: int, limits: Limits = Limits(), *, upsample: bool = True) -> Stream:
    """Open a seekable binary file that soundfile (wav, flac, ogg, opus, mp3, aiff...) or FFmpeg
    (m4a, aac, wma...) reads, checking what it declares against ``limits`` before any decoding.
    Its blocks come at ``target_rate``; without ``upsample``, at the file's own rate when that is lower.

    Raises AudioError for empty, corrupt, non-audio or over-limit input, ReadError or
    TransientReadError when reading the file itself fails.
    """
    size = file.seek(0, io.SEEK_END)
    file.seek(0)
    if size == 0:
        raise AudioError("empty file (0 bytes)")
    watched = _Watched(file)
    try:
        opened = _open_soundfile(watched, limits)
        if opened is None:
            file.seek(0)
            opened = _open_pyav(watched, limits)
    except Exception:
        watched.raise_failure()
        raise
    native, rate, channels, close = opened
    return Stream(native, rate, channels, target_rate if upsample else min(target_rate, rate), limits, close, watched)


def downmix(block: np.ndarray) -> np.ndarray:
    """The mean of the channels of a (frames, channels) block, as a new mono array."""
    # Column by column: numpy's mean over a short last axis is ~15x slower, and took a third
    # of the decode time of a long stereo file.
    mono = block[:, 0].astype(np.float32, copy=True)
    for channel in range(1, block.shape[1]):
        mono += block[:, channel]
    if block.shape[1] > 1:
        mono /= np.float32(block.shape[1])
    return mono


def _check_declared(limits: Limits, channels: int, rate: int, seconds: float | None) -> None:
    if rate <= 0:
        raise AudioError(f"invalid sample rate {rate}")
    if channels <= 0:
        raise AudioError(f"invalid channel count {channels}")
    length = f" for {seconds:.0f} s" if seconds is not None else ""
    declares = f"declares {channels} channel{'s' if channels != 1 else ''} at {rate} Hz{length}"
    if channels > limits.max_channels:
        raise AudioError(f"{declares}: over the limit of {limits.max_channels} channels (SOUNDTAG_MAX_CHANNELS)")
    if rate > limits.max_rate:
        raise AudioError(f"{declares}: over the limit of {limits.max_rate} Hz (SOUNDTAG_MAX_RATE)")
    if seconds is not None and seconds > limits.max_duration_s:
        raise AudioError(f"{declares}: over the {limits.max_duration_s:.0f} s limit (SOUNDTAG_MAX_DURATION_S)")


def _open_soundfile(file: BinaryIO, limits: Limits) -> _Opened | None:
    """libsndfile's blocks, rate, channels and closer; None when the format is one only FFmpeg reads."""
    import soundfile as sf

    try:
        f = sf.SoundFile(file)
    except sf.LibsndfileError as exc:
        if exc.code in _SF_NOT_MINE:
            return None
        raise AudioError(f"corrupt audio file ({exc.error_string})") from None
    try:
        promised = f.frames
        declared = _TRUNCATED_DATA.search(f.extra_info or "")
        if declared and int(declared.group(2)) < int(declared.group(1)):
            # libsndfile shrinks `frames` to what a cut-off WAV holds; its header log keeps the truth.
            promised = int(declared.group(1)) // (f.channels * _bytes_per_sample(f.subtype))
        _check_declared(limits, f.channels, f.samplerate, promised / f.samplerate if f.samplerate > 0 else None)
    except BaseException:
        f.close()
        raise
    return (lambda first, last: _soundfile_seek(f, file, promised, first, last)), f.samplerate, f.channels, f.close


def _soundfile_seek(f, file: BinaryIO, promised: int, first: int, last: int | None) -> tuple[int, Iterator[np.ndarray]]:
    import soundfile as sf

    first = min(first, f.frames)
    try:
        f.seek(first)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"cannot seek to {first / f.samplerate:.2f} s ({first_line(exc)})") from None
    return first, _soundfile_blocks(f, file, promised, first, last)


def _soundfile_blocks(f, file: BinaryIO, promised: int, first: int, last: int | None) -> Iterator[np.ndarray]:
    """(frames, channels) float32 blocks from frame ``first`` to ``last``; after the file's last,
    checks the file held what it promised."""
    import soundfile as sf

    # always_2d keeps (frames, channels) even for mono, so downmixing has one shape to handle;
    # one buffer, refilled, keeps the allocator from growing the heap block after block.
    buffer = np.empty((max(1, _BLOCK_SAMPLES // f.channels), f.channels), np.float32)
    read = first
    while True:
        # Not past `last`: an S3 object is fetched as it is read.
        wanted = len(buffer) if last is None else min(len(buffer), last - read)
        if wanted <= 0:
            return
        try:
            block = f.read(wanted, dtype="float32", always_2d=True, out=buffer[:wanted])
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(f"corrupt or truncated audio ({first_line(exc)})") from None
        if not len(block):
            break
        read += len(block)
        yield block
    # MP3 lengths without a Xing header are estimates from the bitrate: allow them slack.
    slack = 0.1 if f.format == "MP3" else 0.0
    if promised > 0 and read < promised * (1 - slack):
        raise AudioError(f"truncated: header promises {promised / f.samplerate:.2f} s, "
                         f"the file holds {read / f.samplerate:.2f} s")
    if f.format == "OGG" and not _ogg_has_end(file):
        raise AudioError(f"truncated: the Ogg stream stops at {read / f.samplerate:.2f} s without its end page")


def _ogg_has_end(file: BinaryIO) -> bool:
    """A whole Ogg stream's last page carries the end-of-stream flag (header type bit 0x04)."""
    size = file.seek(0, io.SEEK_END)
    file.seek(max(0, size - _OGG_MAX_PAGE))
    tail = file.read()
    last = tail.rfind(b"OggS")
    return last >= 0 and len(tail) > last + 5 and bool(tail[last + 5] & 0x04)


def _bytes_per_sample(subtype: str) -> int:
    return {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}.get(subtype, 2)


def _open_pyav(file: BinaryIO, limits: Limits) -> _Opened:
    import av

    try:
        container = av.open(file, mode="r")
    except av.error.FFmpegError as exc:
        raise AudioError(f"not a readable audio file ({exc.strerror or first_line(exc)})") from None
    except (ValueError, IndexError) as exc:
        raise AudioError(f"not a readable audio file ({first_line(exc)})") from None
    try:
        if not container.streams.audio:
            raise AudioError("no audio stream")
        stream = container.streams.audio[0]
        channels = stream.codec_context.channels or 1
        rate = stream.rate or 0
        # FFmpeg's duration is the container's estimate (AV_TIME_BASE units); blocks() checks the truth.
        seconds = container.duration / 1_000_000 if container.duration else None
        _check_declared(limits, channels, rate, seconds)
    except BaseException:
        container.close()
        raise
    # Frame timestamps are not exact in every container: a span is found by counting from the
    # start, not by seeking.
    return (lambda first, last: (0, _pyav_blocks(container, stream, channels))), rate, channels, container.close


def _pyav_blocks(container, stream, channels: int) -> Iterator[np.ndarray]:
    import av

    # The resampler only converts sample format/layout (to planar float); the rate stays the file's.
    converter = av.AudioResampler(format="fltp", layout=stream.codec_context.layout, rate=stream.rate)
    try:
        for frame in container.decode(stream):
            for out in converter.resample(frame):
                yield out.to_ndarray()[:channels].T
        for out in converter.resample(None):
            yield out.to_ndarray()[:channels].T
    except av.error.FFmpegError as exc:
        raise AudioError(f"not a readable audio file ({exc.strerror or first_line(exc)})") from None
    except (ValueError, IndexError) as exc:
        raise AudioError(f"not a readable audio file ({first_line(exc)})") from None


def decode(data: bytes | BinaryIO, target_rate: int, limits: Limits = Limits()) -> Decoded:
    """A whole file as one mono array at ``target_rate``: the stream's blocks joined, for clips
    and comparisons. Labeling streams instead. Raises AudioError as ``open_stream`` and
    ``Stream.blocks`` do."""
    file = io.BytesIO(data) if isinstance(data, bytes) else data
    with open_stream(file, target_rate, limits) as stream:
        samples = np.concatenate([np.zeros(0, np.float32), *stream.blocks()])
        return Decoded(samples, target_rate, stream.source_rate, stream.channels, stream.duration_s)


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality): duration is kept, the rate changes."""
    if source_rate == target_rate:
        return np.ascontiguousarray(samples, dtype=np.float32)
    import soxr

    return soxr.resample(samples, source_rate, target_rate, quality="HQ").astype(np.float32, copy=False)


def windows(samples: np.ndarray, rate: int, window_s: float, hop_s: float) -> list[AudioWindow]:
    """Split into windows of ``window_s`` every ``hop_s``. A clip no longer than one window is one
    window (the feature extractor pads it). For longer clips the last window is aligned to the
    end, so every window is full and no tail is padded with repeats of a fraction of a second."""
    total = len(samples)
    size = max(1, round(window_s * rate))
    hop = max(1, round(hop_s * rate))
    if total <= size:
        return [AudioWindow(0.0, total / rate, samples)]
    starts = list(range(0, total - size + 1, hop))
    if starts[-1] + size < total:
        starts.append(total - size)
    return [AudioWindow(s / rate, (s + size) / rate, samples[s : s + size]) for s in starts]


class Windower:
    """``windows()`` for a signal that arrives in blocks: the same windows, cut as samples arrive.
    ``finish`` adds what needs the length: the end-aligned last window, or the one short window
    of a clip no longer than a window. Holds about a window and a hop of samples."""

    def __init__(self, rate: int, window_s: float, hop_s: float):
        self.rate = rate
        self.size = max(1, round(window_s * rate))
        self.hop = max(1, round(hop_s * rate))
        self._held: list[np.ndarray] = []
        self._offset = 0  # index in the signal of the first held sample
        self._total = 0  # samples pushed so far
        self._next = 0  # start of the next hop-aligned window
        self._last_end = 0  # end of the last window cut; 0 while none was

    def push(self, samples: np.ndarray) -> list[AudioWindow]:
        """The windows that ``samples`` completes."""
        self._held.append(samples)
        self._total += len(samples)
        if self._next + self.size > self._total:
            return []
        held = self._join()
        cut = []
        while self._next + self.size <= self._total:
            at = self._next - self._offset
            cut.append(AudioWindow(self._next / self.rate, (self._next + self.size) / self.rate,
                                   held[at : at + self.size]))
            self._last_end = self._next + self.size
            self._next += self.hop
        # Keep the last window's worth: the next hop-aligned window starts no earlier (the loop
        # stopped because it does not fit yet), and the end-aligned window may need all of it.
        keep = max(self._offset, self._total - self.size)
        self._held = [held[keep - self._offset :].copy()]
        self._offset = keep
        return cut

    def finish(self) -> list[AudioWindow]:
        """The windows only the end of the signal decides."""
        if self._total == 0:
            return []
        if self._last_end == 0:  # never a full window: the clip is no longer than one
            return [AudioWindow(0.0, self._total / self.rate, self._join())]
        if self._last_end < self._total:
            start = self._total - self.size
            return [AudioWindow(start / self.rate, self._total / self.rate, self._join()[start - self._offset :])]
        return []

    def _join(self) -> np.ndarray:
        if len(self._held) > 1:
            self._held = [np.concatenate(self._held)]
        return self._held[0] if self._held else np.zeros(0, np.float32)
