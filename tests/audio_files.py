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
    ext = path.suffix.lstrip(".").lower()
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


def with_chunks(path: Path, chunks: list[tuple[bytes, bytes]], seconds: float = 2.0, rate: int = 16000,
                after_data: bool = False) -> Path:
    """A WAV tone carrying extra RIFF chunks (id, body), before its ``data`` chunk as recorders
    write them, or after it (``after_data``, as tools that append GUANO do); each padded to an even
    length, the RIFF size updated."""
    import io
    import struct

    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, tone(seconds, rate), rate, format="WAV", subtype="PCM_16")
    data = buffer.getvalue()
    parts, at = [], 12
    while at < len(data):
        kind, size = data[at:at + 4], struct.unpack("<I", data[at + 4:at + 8])[0]
        parts.append((kind, data[at + 8:at + 8 + size]))
        at += 8 + size + size % 2
    extra = [(kind, body) for kind, body in chunks]
    place = len(parts) if after_data else next(n for n, (kind, _) in enumerate(parts) if kind == b"data")
    parts[place:place] = extra
    body = b"WAVE" + b"".join(kind + struct.pack("<I", len(b)) + b + b"\x00" * (len(b) % 2) for kind, b in parts)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def guan(fields: dict[str, str]) -> tuple[bytes, bytes]:
    """A GUANO chunk: ``GUANO|Version`` first, then ``Key: Value`` lines in UTF-8."""
    lines = ["GUANO|Version: 1.0", *(f"{key}: {value}" for key, value in fields.items())]
    return b"guan", "\n".join(lines).encode("utf-8")


def bext(date: str, time: str, description: str = "") -> tuple[bytes, bytes]:
    """A BWF bext chunk (EBU Tech 3285 v2): description 256, originator 32, its reference 32,
    OriginationDate 10, OriginationTime 8, TimeReference 2 × uint32, version, UMID 64, five
    loudness values, 180 reserved bytes, then the coding history."""
    import struct

    return b"bext", (description.encode().ljust(256, b"\0") + b"soundtag tests".ljust(32, b"\0") + b"\0" * 32
                     + date.encode() + time.encode() + struct.pack("<IIH", 0, 0, 2) + b"\0" * 64
                     + struct.pack("<5h", 0, 0, 0, 0, 0) + b"\0" * 180 + b"A=PCM,F=16000,W=16,M=mono\r\n")


def audiomoth_comment(comment: str, artist: str = "AudioMoth 24F3190361DA3578") -> tuple[bytes, bytes]:
    """A LIST chunk of INFO holding ICMT (the comment) and IART, as AudioMoth's firmware writes
    its header: NUL-terminated strings."""
    import struct

    def sub(kind: bytes, text: str) -> bytes:
        raw = text.encode("ascii") + b"\0"
        return kind + struct.pack("<I", len(raw)) + raw + b"\0" * (len(raw) % 2)

    return b"LIST", b"INFO" + sub(b"ICMT", comment) + sub(b"IART", artist)
