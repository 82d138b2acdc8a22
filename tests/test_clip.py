"""review.clip: a segment cut out of a recording reads only that segment, wherever the recording
lives (a local file, an S3 object, a dataset row), and keeps the recording's rate up to 96 kHz."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from review import clip
from tests.test_s3 import bucket, s3_server  # noqa: F401 - fixtures
from soundtag.sources.storage import Storage

RATE = 8000


def _noise(path, seconds: float, rate: int = RATE, subtype: str = "PCM_16") -> np.ndarray:
    """A recording whose every sample differs, so a cut from the wrong place cannot match."""
    samples = (np.random.default_rng(7).uniform(-0.5, 0.5, int(seconds * rate))).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, rate, subtype=subtype)
    return sf.read(path, dtype="float32")[0]  # as stored (16-bit)


def test_a_local_cut_is_the_segment_at_the_recordings_rate(tmp_path):
    stored = _noise(tmp_path / "long.wav", 600)
    cut = clip.Clips(Storage()).cut((tmp_path / "long.wav").as_uri(), 299.0, 311.0)
    assert (cut.rate, cut.source_rate, cut.start_s) == (RATE, RATE, 299.0)
    np.testing.assert_array_equal(cut.samples, stored[299 * RATE:311 * RATE])
    back, rate = sf.read(__import__("io").BytesIO(cut.wav()), dtype="float32")
    assert rate == RATE and len(cut.wav()) < 2 * 12 * RATE * 2  # PCM16: the segment's own size, and a header
    np.testing.assert_allclose(back, stored[299 * RATE:311 * RATE], atol=1 / 32768)


def test_the_end_of_a_recording_clips_the_cut(tmp_path):
    stored = _noise(tmp_path / "short.wav", 5)
    cut = clip.Clips(Storage()).cut((tmp_path / "short.wav").as_uri(), 4.0, 7.0)
    np.testing.assert_array_equal(cut.samples, stored[4 * RATE:])


def test_above_96_khz_the_cut_is_resampled_to_96_khz(tmp_path):
    import soxr

    path = tmp_path / "bat.wav"
    t = np.arange(192_000 * 2) / 192_000
    sf.write(path, 0.5 * np.sin(2 * np.pi * 40_000 * t), 192_000, subtype="PCM_16")  # a 40 kHz call
    cut = clip.Clips(Storage()).cut(path.as_uri(), 0.5, 1.5)
    assert (cut.rate, cut.source_rate, len(cut.samples)) == (96_000, 192_000, 96_000)
    spectrum = np.abs(np.fft.rfft(cut.samples))
    assert np.argmax(spectrum) == pytest.approx(40_000, abs=2)  # the call is still at 40 kHz, below 48
    assert soxr  # resampled with soxr, the worker's resampler


def test_formats_libsndfile_cannot_seek_are_decoded_through(tmp_path):
    from tests.audio_files import write

    path = write(tmp_path / "note.m4a", seconds=6.0, rate=RATE)
    cut = clip.Clips(Storage()).cut(path.as_uri(), 2.0, 3.5)
    assert cut.rate == RATE and abs(len(cut.samples) - 1.5 * RATE) <= 1


def test_an_s3_cut_fetches_the_segment_not_the_object(tmp_path, bucket):  # noqa: F811 - fixture
    stored = _noise(tmp_path / "day.wav", 600)
    bucket.put("field/day.wav", (tmp_path / "day.wav").read_bytes())
    storage = Storage()
    received = []
    storage._s3_client().meta.events.register(
        "after-call.s3.GetObject", lambda parsed, **_: received.append(parsed["ContentLength"]))
    cut = clip.Clips(storage).cut(f"s3://{bucket.name}/field/day.wav", 299.0, 311.0)
    np.testing.assert_array_equal(cut.samples, stored[299 * RATE:311 * RATE])
    segment = 12 * RATE * 2
    # Of a 9.6 MB object: its header, then the segment (read ahead at most twice over).
    assert sum(received) <= 64 * 1024 + 2 * segment, received


def test_a_dataset_row_is_cut_by_slicing_its_clip(tmp_path):
    from datasets import Audio, Dataset

    stored = _noise(tmp_path / "clip.wav", 20)
    Dataset.from_dict({"audio": [{"bytes": (tmp_path / "clip.wav").read_bytes(), "path": "clip.wav"}]}) \
        .cast_column("audio", Audio()).to_parquet(tmp_path / "one.parquet")
    cut = clip.Clips(Storage()).cut(f"hf://{tmp_path}/one.parquet:train/0", 5.0, 7.0)
    np.testing.assert_array_equal(cut.samples, stored[5 * RATE:7 * RATE])
