"""Real audio files in real formats, written by the encoders users' files come from."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tone(seconds: float, rate: int, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    """A sine per channel (channel k at freq * (k + 1)), shape (frames, channels)."""
    t = np.arange(int(round(seconds * rate))) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * freq * (k + 1) * t) for k in range(channels)], axis=1).astype(np.float32)


def _write_pyav(path: Path, samples: np.ndarray, rate: int, codec: str) -> None:
    import av

    layout = {1: "mono", 2: "stereo"}[samples.shape[1]]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        frame_size = 1024
        pts = 0
        for start in range(0, len(samples), frame_size):
            chunk = np.ascontiguousarray(samples[start : start + frame_size].T)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate, frame.pts = rate, pts
            pts += chunk.shape[1]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


SOUNDFILE_FORMATS = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "opus": ("OGG", "OPUS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "aiff": ("AIFF", "PCM_24"),
}


def write(path: Path, seconds: float = 2.0, rate: int = 44100, channels: int = 1, freq: float = 440.0) -> Path:
    """Write a tone to ``path`` in the format its extension names."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = tone(seconds, rate, channels, freq)
    ext = path.suffix.lstrip(".")
    if ext in SOUNDFILE_FORMATS:
        fmt, subtype = SOUNDFILE_FORMATS[ext]
        sf.write(path, samples, rate, format=fmt, subtype=subtype)
    elif ext == "m4a":
        _write_pyav(path, samples, rate, "aac")
    else:
        raise ValueError(ext)
    return path


def write_long(path: Path, seconds: int, rate: int, channels: int = 1, freq: float = 440.0) -> Path:
    """A long 16-bit FLAC written one second at a time, so hours of audio never sit in memory.
    With a whole number of Hz every second holds whole periods, and the same second repeats."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    second = (tone(1.0, rate, channels, freq) * 32767).astype(np.int16)
    with sf.SoundFile(path, "w", rate, channels, format="FLAC", subtype="PCM_16") as f:
        for _ in range(seconds):
            f.write(second)
    return path
