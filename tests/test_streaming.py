"""Streaming decode: windows as the whole-signal split cuts them, band-limited resampling, bounded
memory for long, high-rate and many-channel files, limits against decompression bombs."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from soundtag import audio
from soundtag.audio import AudioError, Limits, Stream, Windower, decode, open_stream, resample, windows
from soundtag.sources.storage import open_local
from soundtag.taxonomy import taxonomy_from_csv
from tests.audio_files import tone, write, write_long
from tests.conftest import ROOT, query

LABELS = "dog barking,rain,siren"


@pytest.fixture(scope="module")
def classifier(tiny_clap, export_dir):
    from model.classifier import load_classifier

    return load_classifier(str(tiny_clap), export_dir, backend="torch", device="cpu")


def _streamed(path, rate: int, window_s: float, hop_s: float) -> list[audio.AudioWindow]:
    with open(path, "rb") as f, open_stream(f, rate) as stream:
        windower = Windower(rate, window_s, hop_s)
        cut = [w for block in stream.blocks() for w in windower.push(block)]
        return cut + windower.finish()


@pytest.mark.parametrize("total", [1, 5, 9, 10, 11, 25, 30, 31, 47])
@pytest.mark.parametrize("size, hop", [(10, 10), (10, 4), (10, 15), (1, 1)])
def test_windower_cuts_what_windows_cuts_however_the_blocks_fall(total, size, hop):
    signal = np.arange(total, dtype=np.float32)
    rng = np.random.default_rng(total * 100 + hop)
    cuts = np.sort(rng.choice(np.arange(1, total), size=min(total - 1, rng.integers(0, 6)), replace=False)) \
        if total > 1 else []
    windower = Windower(1, size, hop)
    got = [w for block in np.split(signal, cuts) for w in windower.push(block)] + windower.finish()
    expected = windows(signal, 1, size, hop)
    assert [(w.start_s, w.end_s) for w in got] == [(w.start_s, w.end_s) for w in expected]
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a.samples, b.samples)


@pytest.mark.parametrize("seconds, source_rate", [(3.0, 44100), (10.0, 96000), (25.0, 44100), (37.5, 96000)])
@pytest.mark.parametrize("hop_s", [10.0, 4.0])
def test_streamed_windows_equal_the_split_of_the_whole_decoded_file(tmp_path, monkeypatch, seconds, source_rate,
                                                                    hop_s):
    # Small blocks of an odd size: many block edges, falling anywhere in the windows.
    monkeypatch.setattr(audio, "_BLOCK_SAMPLES", 20011)
    path = tmp_path / "clip.flac"
    rng = np.random.default_rng(1)
    sf.write(path, 0.1 * rng.standard_normal((int(seconds * source_rate), 2)), source_rate, subtype="PCM_24")

    whole, _ = sf.read(path, dtype="float32", always_2d=True)
    expected = windows(resample(whole.mean(axis=1), source_rate, 48000), 48000, 10.0, hop_s)
    got = _streamed(path, 48000, 10.0, hop_s)
    assert [(w.start_s, w.end_s) for w in got] == [(w.start_s, w.end_s) for w in expected]
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a.samples, b.samples, atol=1e-5)


def _level_db(samples: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(samples.astype(np.float64) ** 2)) + 1e-20)


def test_30khz_tone_in_a_192khz_file_is_filtered_out_not_aliased_at_48khz(tmp_path):
    # 30 kHz is above 48 kHz's Nyquist: dropping samples would fold it to 18 kHz at full level.
    high = write(tmp_path / "high.wav", seconds=2.0, rate=192000, freq=30000.0)
    low = write(tmp_path / "low.wav", seconds=2.0, rate=192000, freq=1000.0)
    kept = decode(low.read_bytes(), 48000).samples[4800:-4800]
    folded = decode(high.read_bytes(), 48000).samples[4800:-4800]
    assert _level_db(kept) == pytest.approx(_level_db(tone(2.0, 48000)), abs=0.5)
    assert _level_db(folded) <= _level_db(kept) - 40


def test_decoding_past_the_duration_limit_stops_without_reading_the_rest():
    # A header can lie (or say nothing); the decoded length is what counts.
    read = []

    def lying_decoder():
        for i in range(100):
            read.append(i)
            yield np.zeros((1000, 1), np.float32)

    with Stream(lambda first, last: (0, lying_decoder()), 1000, 1, 1000, Limits(max_duration_s=5)) as stream:
        with pytest.raises(AudioError, match=r"^decodes to more than 5 s, over the 5 s limit"):
            list(stream.blocks())
    assert len(read) == 6


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """954 KB of FLAC: 10 minutes of silence in 8 channels at 192 kHz (3.7 GB as float32)."""
    return write_long(tmp_path_factory.mktemp("bomb") / "bomb.flac", 600, 192000, channels=8, freq=0.0)


@pytest.mark.parametrize("limits, reason", [
    (Limits(max_duration_s=300),
     "declares 8 channels at 192000 Hz for 600 s: over the 300 s limit (SOUNDTAG_MAX_DURATION_S)"),
    (Limits(max_channels=2), "declares 8 channels at 192000 Hz for 600 s: over the limit of 2 channels"),
    (Limits(max_rate=96000), "declares 8 channels at 192000 Hz for 600 s: over the limit of 96000 Hz"),
])
def test_decompression_bomb_fails_on_what_it_declares_before_decoding(bomb, limits, reason):
    assert bomb.stat().st_size < 2_000_000
    with open(bomb, "rb") as f:
        with pytest.raises(AudioError, match=f"^{re.escape(reason)}") as info:
            open_stream(f, 48000, limits)
    assert "\n" not in str(info.value)


def test_content_hash_is_the_sha256_of_the_file_bytes(classifier, tmp_path):
    from worker.labeling import Labeler

    paths = [write(tmp_path / "a.flac", seconds=25.0, rate=44100, channels=2), write(tmp_path / "b.ogg", seconds=3.0)]
    results = list(Labeler(classifier).label([p.as_uri() for p in paths], classifier.label_embeddings(taxonomy_from_csv(LABELS)), open_local))
    assert [r.content_hash for r in results] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def test_file_found_truncated_after_its_first_windows_fails_alone(classifier, tmp_path, monkeypatch):
    from worker.labeling import Labeler

    monkeypatch.setattr(audio, "_BLOCK_SAMPLES", 16000)
    data = write(tmp_path / "long.wav", seconds=60.0, rate=16000).read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) * 3 // 4])
    good = write(tmp_path / "good.wav", seconds=12.0)
    uris = [(tmp_path / "cut.wav").as_uri(), good.as_uri()]
    # Batches of 2: the cut file's first windows reach the model before its end shows the cut.
    cut, ok = Labeler(classifier, batch_size=2).label(uris, classifier.label_embeddings(taxonomy_from_csv(LABELS)), open_local)
    assert cut.error == "truncated: header promises 60.00 s, the file holds 45.00 s"
    assert cut.segments == [] and cut.scores is None
    assert ok.ok and [(s.start_s, s.end_s) for s in ok.segments] == [(0.0, 10.0), (2.0, 12.0)]


def test_long_file_reaches_the_model_in_batches_while_it_decodes(classifier, tmp_path, monkeypatch):
    from worker.labeling import Labeler

    path = write_long(tmp_path / "long.flac", 120, 16000)  # 12 windows
    made, made_before_batch = [], []
    towers = classifier.towers  # the torch backend's stages, counted
    features, embed = towers.features, towers.embed_audio

    def counted_features(windows):
        made.append(len(windows))
        return features(windows)

    def counted_embed(batch):
        made_before_batch.append(sum(made))
        return embed(batch)

    monkeypatch.setattr(towers, "features", counted_features)
    monkeypatch.setattr(towers, "embed_audio", counted_embed)
    (result,) = Labeler(classifier, batch_size=2).label([path.as_uri()], classifier.label_embeddings(taxonomy_from_csv(LABELS)), open_local)
    assert len(result.segments) == sum(made) == 12
    # Before each batch: the windows scored so far, the batch, one batch in the file's queue
    # and one window in the decode thread's hands; never the whole file.
    assert all(before <= 2 * i + 2 + 2 + 1 for i, before in enumerate(made_before_batch))


def _peak_rss_mb(tmp_path, name: str, folder, model) -> float:
    """Peak RSS of a `soundtag run` of ``folder``, in a fresh process so no earlier child counts."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, "
            "stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    database = f"sqlite:///{tmp_path / name}.db"
    # Batches of 4 windows, which both files fill: a batch's activations are not what is measured.
    run = [sys.executable, "-m", "soundtag.cli", "run", str(folder), "--labels", LABELS, "--model", str(model),
           "--database", database, "--batch-size", "4"]
    proc = subprocess.run([sys.executable, "-c", code, *run], cwd=ROOT, capture_output=True, text=True, check=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)
    assert query(database, "select status from files") == [("done",)]
    return int(proc.stdout.split()[-1]) / 1024  # KiB on Linux


def test_long_high_rate_file_takes_no_more_memory_than_a_short_one(tmp_path, tiny_clap):
    # 10 minutes of 96 kHz stereo: 440 MB as float32 samples, decoded whole.
    short = write_long(tmp_path / "short" / "a.flac", 60, 96000, channels=2)
    long = write_long(tmp_path / "long" / "a.flac", 600, 96000, channels=2)
    short_mb = _peak_rss_mb(tmp_path, "short", short.parent, tiny_clap)
    long_mb = _peak_rss_mb(tmp_path, "long", long.parent, tiny_clap)
    windows_of_long = query(f"sqlite:///{tmp_path / 'long'}.db", "select count(distinct start_s) from segment_labels")
    assert windows_of_long == [(60,)]
    assert long_mb <= short_mb + 250, f"short {short_mb:.0f} MB, long {long_mb:.0f} MB"
