import io

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

from soundtag.audio import Limits, Windower, decode, resample, windows
from soundtag.errors import AudioError
from tests.audio_files import tone, write

FORMATS = ["wav", "flac", "ogg", "opus", "mp3", "aiff", "m4a"]


@pytest.mark.parametrize("ext", FORMATS)
def test_every_format_decodes_to_mono_at_model_rate(tmp_path, ext):
    rate = 48000 if ext == "opus" else 44100
    path = write(tmp_path / f"clip.{ext}", seconds=2.0, rate=rate, channels=2)
    audio = decode(path.read_bytes(), 48000)
    assert audio.sample_rate == 48000 and audio.source_rate == rate and audio.channels == 2
    # Lossy codecs add encoder delay/padding of a few ms; the duration is still the clip's.
    assert audio.duration_s == pytest.approx(2.0, abs=0.1)
    assert audio.samples.ndim == 1 and audio.samples.dtype == np.float32
    assert len(audio.samples) == pytest.approx(audio.duration_s * 48000, abs=2)


def test_192khz_file_is_resampled_not_stretched(tmp_path):
    path = write(tmp_path / "hi.wav", seconds=5.0, rate=192000, freq=1000.0)
    audio = decode(path.read_bytes(), 48000)
    assert audio.source_rate == 192000
    assert audio.duration_s == pytest.approx(5.0)
    assert len(audio.samples) == 5 * 48000  # 5 s at 48 kHz, never 60 s
    spectrum = np.abs(np.fft.rfft(audio.samples))
    peak_hz = np.argmax(spectrum) * 48000 / len(audio.samples)
    assert peak_hz == pytest.approx(1000.0, abs=1.0)


def test_8khz_file_is_upsampled(tmp_path):
    audio = decode(write(tmp_path / "phone.wav", seconds=3.0, rate=8000).read_bytes(), 48000)
    assert len(audio.samples) == 3 * 48000 and audio.source_rate == 8000


def test_multichannel_is_downmixed_by_averaging(tmp_path):
    left_right = np.stack([np.full(4800, 0.5), np.full(4800, -0.1)], axis=1)
    buf = io.BytesIO()
    sf.write(buf, left_right, 48000, format="WAV", subtype="FLOAT")
    audio = decode(buf.getvalue(), 48000)
    assert audio.channels == 2
    np.testing.assert_allclose(audio.samples, 0.2, atol=1e-6)


def test_six_channel_file_records_channels(tmp_path):
    buf = io.BytesIO()
    sf.write(buf, tone(1.0, 48000, channels=6), 48000, format="WAV")
    assert decode(buf.getvalue(), 48000).channels == 6


def _wav_bytes(samples, rate=16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file"),
    (_wav_bytes(np.zeros((0, 1))), "no audio samples"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 3, "corrupt audio file"),
    (b"hello, this is a text file\n" * 100, "not a readable audio file"),
    (_wav_bytes(tone(2.0, 16000))[:20000], "truncated: header promises 2.00 s, the file holds 0.62 s"),
])
def test_bad_input_raises_one_line_reason(data, reason):
    with pytest.raises(AudioError, match=reason) as info:
        decode(data, 48000)
    assert "\n" not in str(info.value)


def test_over_long_file_fails_instead_of_filling_memory():
    with pytest.raises(AudioError, match="over the 60 s limit"):
        decode(_wav_bytes(np.zeros((16000 * 61, 1))), 48000, Limits(max_duration_s=60))


def test_short_clip_is_one_window():
    parts = windows(np.zeros(48000 * 3, np.float32), 48000, 10.0, 10.0)
    assert [(w.start_s, w.end_s) for w in parts] == [(0.0, 3.0)]


def test_long_clip_windows_cover_it_with_end_aligned_last_window():
    parts = windows(np.arange(48000 * 25, dtype=np.float32), 48000, 10.0, 10.0)
    assert [(w.start_s, w.end_s) for w in parts] == [(0.0, 10.0), (10.0, 20.0), (15.0, 25.0)]
    assert all(len(w.samples) == 480000 for w in parts)
    assert parts[2].samples[0] == 48000 * 15


def test_hop_shorter_than_window_overlaps():
    parts = windows(np.zeros(48000 * 20, np.float32), 48000, 10.0, 5.0)
    assert [w.start_s for w in parts] == [0.0, 5.0, 10.0]


@pytest.mark.parametrize("ext", ["flac", "ogg", "mp3", "wav"])
def test_cut_off_compressed_file_fails_instead_of_labeling_half(tmp_path, ext):
    data = write(tmp_path / f"clip.{ext}", seconds=30.0, rate=16000).read_bytes()
    with pytest.raises(AudioError, match="truncated|corrupt"):
        decode(data[: len(data) // 2], 48000)


RATE = 100  # samples per second: windows of a few seconds stay a few hundred samples


def _bounds(parts):
    return [(w.start_s, w.end_s, w.samples.tolist()) for w in parts]


@given(st.integers(1, 2000), st.integers(1, 600), st.integers(1, 600))
def test_windows_cover_every_sample_of_a_recording_and_no_window_twice(total, size, hop):
    """Every sample is in a window, every window is the recording's own samples, no window twice;
    the windows are full (the last aligned to the end) unless the clip is shorter than one."""
    hop = min(hop, size)  # longer hops skip audio by design
    samples = np.arange(total, dtype=np.float32)
    parts = windows(samples, RATE, size / RATE, hop / RATE)
    covered = np.zeros(total, int)
    for w in parts:
        first = int(round(w.start_s * RATE))
        assert w.samples.tolist() == samples[first:first + len(w.samples)].tolist()
        assert w.end_s == pytest.approx((first + len(w.samples)) / RATE)
        covered[first:first + len(w.samples)] = 1
    assert covered.all() and parts[0].start_s == 0.0 and parts[-1].end_s == pytest.approx(total / RATE)
    assert len({w.start_s for w in parts}) == len(parts)
    assert all(len(w.samples) == min(size, total) for w in parts)
    assert [w.start_s for w in parts[:-1]] == pytest.approx([i * hop / RATE for i in range(len(parts) - 1)])


@given(st.integers(0, 2000), st.integers(1, 600), st.integers(1, 600), st.lists(st.integers(1, 700), min_size=1))
def test_windows_cut_as_blocks_arrive_are_the_windows_of_the_whole(total, size, hop, blocks):
    samples = np.arange(total, dtype=np.float32)
    windower, at, cut = Windower(RATE, size / RATE, hop / RATE), 0, []
    for length in blocks * (total // sum(blocks) + 1):
        if at >= total:
            break
        cut += windower.push(samples[at:at + length])
        at += length
    cut += windower.finish()
    assert _bounds(cut) == (_bounds(windows(samples, RATE, size / RATE, hop / RATE)) if total else [])


def test_resampling_keeps_the_duration_and_the_pitch():
    rate = 48000
    sine = np.sin(2 * np.pi * 1000 * np.arange(rate) / rate).astype(np.float64)
    down = resample(sine, rate, 16000)
    assert down.dtype == np.float32 and len(down) == 16000
    assert np.argmax(np.abs(np.fft.rfft(down))) == 1000  # 1 Hz bins over one second
    same = resample(sine, rate, rate)
    assert same.dtype == np.float32 and same.flags.c_contiguous and np.allclose(same, sine, atol=1e-6)


def test_a_block_that_completes_a_window_yields_it_at_once():
    windower = Windower(RATE, 4 / RATE, 2 / RATE)
    assert windower.push(np.arange(3, dtype=np.float32)) == []
    assert [(w.start_s, w.end_s) for w in windower.push(np.arange(1, dtype=np.float32))] == [(0.0, 0.04)]
    assert [(w.start_s, w.end_s) for w in windower.push(np.arange(2, dtype=np.float32))] == [(0.02, 0.06)]
