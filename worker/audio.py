"""Audio bytes to model-rate mono windows: decode, downmix, resample, split.

Pure functions of their input; nothing here knows about the model beyond its rate and window.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np

from soundtag.errors import AudioError, first_line


@dataclass(frozen=True)
class Decoded:
    samples: np.ndarray  # float32, mono, at `sample_rate`
    sample_rate: int  # the rate of `samples`
    source_rate: int  # the file's own rate
    channels: int  # the file's own channel count
    duration_s: float


@dataclass(frozen=True)
class Window:
    start_s: float
    end_s: float
    samples: np.ndarray


# libsndfile error codes: unrecognised format and unsupported encoding are left to FFmpeg; any
# other error means libsndfile knows the format and the file is broken.
_SF_NOT_MINE = {1, 4}
_TRUNCATED_DATA = re.compile(r"^data\s*:\s*(\d+) \(should be (\d+)\)", re.MULTILINE)


def _decode_soundfile(data: bytes) -> tuple[np.ndarray, int] | None:
    """Decode with libsndfile; None when the format is one only FFmpeg reads."""
    import soundfile as sf

    try:
        f = sf.SoundFile(io.BytesIO(data))
    except sf.LibsndfileError as exc:
        if exc.code in _SF_NOT_MINE:
            return None
        raise AudioError(f"corrupt audio file ({exc.error_string})") from None
    with f:
        try:
            # always_2d keeps (frames, channels) even for mono, so downmixing has one shape to handle.
            samples = f.read(dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(f"corrupt or truncated audio ({first_line(exc)})") from None
        promised = f.frames
        declared = _TRUNCATED_DATA.search(f.extra_info or "")
        if declared and int(declared.group(2)) < int(declared.group(1)):
            # libsndfile shrinks `frames` to what a cut-off WAV holds; its header log keeps the truth.
            promised = int(declared.group(1)) // (f.channels * _bytes_per_sample(f.subtype))
        # MP3 lengths without a Xing header are estimates from the bitrate: allow them slack.
        slack = 0.1 if f.format == "MP3" else 0.0
        if promised > 0 and len(samples) < promised * (1 - slack):
            raise AudioError(f"truncated: header promises {promised / f.samplerate:.2f} s, "
                             f"the file holds {len(samples) / f.samplerate:.2f} s")
        if f.format == "OGG" and not _ogg_has_end(data):
            raise AudioError(f"truncated: the Ogg stream stops at {len(samples) / f.samplerate:.2f} s without its end page")
        return samples, f.samplerate


def _ogg_has_end(data: bytes) -> bool:
    """A whole Ogg stream's last page carries the end-of-stream flag (header type bit 0x04)."""
    last = data.rfind(b"OggS")
    return last >= 0 and len(data) > last + 5 and bool(data[last + 5] & 0x04)


def _bytes_per_sample(subtype: str) -> int:
    return {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}.get(subtype, 2)


def _decode_pyav(data: bytes) -> tuple[np.ndarray, int]:
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise AudioError("no audio stream")
            stream = container.streams.audio[0]
            channels = stream.codec_context.channels or 1
            # The resampler only converts sample format/layout (to planar float); the rate stays the file's.
            converter = av.AudioResampler(format="fltp", layout=stream.codec_context.layout, rate=stream.rate)
            chunks = []
            for frame in container.decode(stream):
                for out in converter.resample(frame):
                    chunks.append(out.to_ndarray())
            for out in converter.resample(None):
                chunks.append(out.to_ndarray())
            rate = stream.rate
    except AudioError:
        raise
    except av.error.FFmpegError as exc:
        raise AudioError(f"not a readable audio file ({exc.strerror or first_line(exc)})") from None
    except (ValueError, IndexError) as exc:
        raise AudioError(f"not a readable audio file ({first_line(exc)})") from None
    if not chunks:
        raise AudioError("no audio samples")
    planar = np.concatenate(chunks, axis=1)[:channels]
    return planar.T.astype(np.float32, copy=False), rate


def decode(data: bytes, target_rate: int, max_duration_s: float = float("inf")) -> Decoded:
    """Decode any file soundfile (wav, flac, ogg, opus, mp3, aiff...) or FFmpeg (m4a, aac, wma...)
    reads, downmix to mono and resample with soxr to ``target_rate``.

    Raises AudioError for empty, corrupt, truncated-to-nothing or non-audio input.
    """
    if not data:
        raise AudioError("empty file (0 bytes)")
    decoded = _decode_soundfile(data)
    samples, rate = decoded if decoded is not None else _decode_pyav(data)
    frames, channels = samples.shape
    if frames == 0:
        raise AudioError("no audio samples")
    if rate <= 0:
        raise AudioError(f"invalid sample rate {rate}")
    duration_s = frames / rate
    if duration_s > max_duration_s:
        raise AudioError(f"{duration_s:.0f} s long, over the {max_duration_s:.0f} s limit (SOUNDTAG_MAX_DURATION_S)")
    mono = samples.mean(axis=1, dtype=np.float32) if channels > 1 else samples[:, 0]
    if not np.isfinite(mono).all():
        raise AudioError("samples are NaN or infinite")
    return Decoded(resample(mono, rate, target_rate), target_rate, rate, channels, duration_s)


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality): duration is kept, the rate changes."""
    if source_rate == target_rate:
        return np.ascontiguousarray(samples, dtype=np.float32)
    import soxr

    return soxr.resample(samples, source_rate, target_rate, quality="HQ").astype(np.float32, copy=False)


def windows(samples: np.ndarray, rate: int, window_s: float, hop_s: float) -> list[Window]:
    """Split into windows of ``window_s`` every ``hop_s``. A clip no longer than one window is one
    window (the feature extractor pads it). For longer clips the last window is aligned to the
    end, so every window is full and no tail is padded with repeats of a fraction of a second."""
    total = len(samples)
    size = max(1, round(window_s * rate))
    hop = max(1, round(hop_s * rate))
    if total <= size:
        return [Window(0.0, total / rate, samples)]
    starts = list(range(0, total - size + 1, hop))
    if starts[-1] + size < total:
        starts.append(total - size)
    return [Window(s / rate, (s + size) / rate, samples[s : s + size]) for s in starts]
