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


def test_a_cut_of_a_long_many_channel_flac_is_its_span_mixed_down_at_its_rate(tmp_path):
    rate, channels = 48_000, 8
    rng = np.random.default_rng(3)
    many = rng.uniform(-0.4, 0.4, (40 * rate, channels)).astype(np.float32)
    sf.write(tmp_path / "array.flac", many, rate, subtype="PCM_16")
    stored = sf.read(tmp_path / "array.flac", dtype="float32")[0]
    cut = clip.Clips(Storage()).cut((tmp_path / "array.flac").as_uri(), 31.0, 32.5)
    assert (cut.rate, cut.source_rate, cut.start_s, len(cut.samples)) == (rate, rate, 31.0, int(1.5 * rate))
    expected = stored[31 * rate:int(32.5 * rate)].mean(axis=1)
    np.testing.assert_allclose(cut.samples, expected, atol=1 / 32768)  # 16-bit rounding only


def test_a_cut_never_exceeds_max_seconds_even_by_one_sample(tmp_path):
    _noise(tmp_path / "long.wav", clip.MAX_SECONDS + 1)
    clips = clip.Clips(Storage())
    exact = clip.MAX_SECONDS * RATE
    assert len(clips.cut((tmp_path / "long.wav").as_uri(), 0.0, clip.MAX_SECONDS).samples) == exact
    assert len(clips.cut((tmp_path / "long.wav").as_uri(), 0.0, clip.MAX_SECONDS + 1 / RATE).samples) == exact
    assert len(clips.cut((tmp_path / "long.wav").as_uri(), 1.0, clip.MAX_SECONDS + 1).samples) == exact


def test_a_many_channel_cut_decodes_no_more_than_max_samples(tmp_path, monkeypatch):
    monkeypatch.setattr(clip, "MAX_SAMPLES", 8 * RATE * 2)  # 2 s of 8 channels
    sf.write(tmp_path / "eight.wav", np.zeros((5 * RATE, 8), np.float32), RATE, subtype="PCM_16")
    cut = clip.Clips(Storage()).cut((tmp_path / "eight.wav").as_uri(), 1.0, 5.0)
    assert len(cut.samples) == 2 * RATE


def test_cuts_beyond_the_limit_wait_their_turn_rather_than_fail(tmp_path, monkeypatch):
    import threading

    stored = _noise(tmp_path / "long.wav", 20)
    running, most, gate, lock = [0], [0], threading.Event(), threading.Lock()
    real = clip._cut

    def held(*args):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        gate.wait(30)
        try:
            return real(*args)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(clip, "_cut", held)
    clips, found = clip.Clips(Storage(), concurrent=2), {}
    threads = [threading.Thread(target=lambda n=n: found.setdefault(n, clips.cut(
        (tmp_path / "long.wav").as_uri(), n, n + 1.0))) for n in range(6)]
    for thread in threads:
        thread.start()
    threading.Event().wait(1.0)  # time for all six to reach the decoder, were they let through
    gate.set()
    for thread in threads:
        thread.join(60)
    assert most[0] == 2
    for n in range(6):
        np.testing.assert_array_equal(found[n].samples, stored[n * RATE:(n + 1) * RATE])


def test_a_repeated_cut_is_served_from_the_cache_until_the_file_changes(tmp_path, monkeypatch):
    import os

    _noise(tmp_path / "a.wav", 10)
    decoded = []
    real = clip._cut
    monkeypatch.setattr(clip, "_cut", lambda *args: decoded.append(args[1:]) or real(*args))
    clips = clip.Clips(Storage())
    first = clips.cut((tmp_path / "a.wav").as_uri(), 2.0, 4.0)
    again = clips.cut((tmp_path / "a.wav").as_uri(), 2.0, 4.0)
    assert again is first and decoded == [(2.0, 4.0)]
    stored = _noise(tmp_path / "a.wav", 10)[::-1].copy()
    sf.write(tmp_path / "a.wav", stored, RATE, subtype="PCM_16")
    os.utime(tmp_path / "a.wav", ns=(1, 1))
    changed = clips.cut((tmp_path / "a.wav").as_uri(), 2.0, 4.0)
    assert len(decoded) == 2
    np.testing.assert_array_equal(changed.samples, stored[2 * RATE:4 * RATE])


def test_an_s3_object_replaced_by_one_of_the_same_size_is_cut_again(tmp_path, bucket):  # noqa: F811 - fixture
    """S3 objects are replaced, not edited: the kept cut is the object's by its ETag, not its size."""
    _noise(tmp_path / "a.wav", 10)
    bucket.put("field/a.wav", (tmp_path / "a.wav").read_bytes())
    clips = clip.Clips(Storage())
    uri = f"s3://{bucket.name}/field/a.wav"
    first = clips.cut(uri, 2.0, 4.0)
    assert clips.cut(uri, 2.0, 4.0) is first
    stored = _noise(tmp_path / "a.wav", 10)[::-1].copy()
    sf.write(tmp_path / "a.wav", stored, RATE, subtype="PCM_16")  # the same length, other samples
    bucket.put("field/a.wav", (tmp_path / "a.wav").read_bytes())
    np.testing.assert_array_equal(clips.cut(uri, 2.0, 4.0).samples, stored[2 * RATE:4 * RATE])
