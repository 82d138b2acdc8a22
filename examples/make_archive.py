"""Writes a small example archive: synthetic sounds in several formats, rates and channel
counts, two recordings of each sound, one long recording, and one corrupt file (to show how failures are recorded).

    python -m examples.make_archive examples/archive
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile as sf


def _sounds(rate: int, seconds: float) -> dict[str, np.ndarray]:
    t = np.arange(int(rate * seconds)) / rate
    rng = np.random.default_rng(7)
    siren = np.sin(2 * np.pi * (700 + 300 * np.sin(2 * np.pi * 0.5 * t)) * t)
    rain = rng.standard_normal(len(t)) * (0.3 + 0.1 * rng.random(len(t)))
    beeps = np.sin(2 * np.pi * 1000 * t) * (np.sin(2 * np.pi * 2 * t) > 0.6)
    chord = sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)) / 3
    return {"siren": siren, "rain": rain, "beeps": beeps, "chord": chord}


def main(folder: str) -> None:
    root = Path(folder)
    (root / "field").mkdir(parents=True, exist_ok=True)
    for (name, x), (ext, rate, subtype) in zip(_sounds(44100, 6.0).items(), [
            ("wav", 44100, "PCM_16"), ("flac", 44100, "PCM_24"), ("mp3", 44100, "MPEG_LAYER_III"),
            ("ogg", 44100, "VORBIS")]):
        sf.write(root / f"{name}.{ext}", 0.5 * x, rate, subtype=subtype)
    # A second recording of each sound, at another rate and length: a head learns a label from
    # two files of it at least (soundtag train).
    for name, x in _sounds(32000, 5.0).items():
        if name != "chord":
            sf.write(root / "field" / f"{name}-2.wav", 0.4 * x, 32000)
    hi = _sounds(96000, 4.0)["chord"]
    sf.write(root / "field" / "chord-96k-stereo.wav", np.stack([hi, 0.8 * hi], axis=1) * 0.5, 96000)
    long = np.concatenate([_sounds(22050, 12.0)[k] for k in ("rain", "siren", "beeps")])
    sf.write(root / "field" / "long-recording.flac", 0.5 * long, 22050)
    (root / "field" / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt this is not audio")
    print(f"wrote {sum(1 for p in root.rglob('*') if p.is_file())} files to {root}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "examples/archive")
