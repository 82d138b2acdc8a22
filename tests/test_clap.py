"""The classifier against the transformers pipeline, on a real (tiny, random) CLAP checkpoint, on
each backend (torch, ONNX Runtime, OpenVINO)."""

import numpy as np
import pytest
import torch
from transformers import pipeline

from model.classifier import load_classifier
from model.log_mel import LogMel
from soundtag.sources.storage import open_local
from soundtag.taxonomy import Taxonomy, taxonomy_from_csv
from tests.audio_files import write
from worker.labeling import Labeler

LABELS = ["dog barking", "rain", "siren", "speech", "church bells"]


@pytest.fixture(scope="module")
def classifier(tiny_clap, export_dir):
    """The torch backend, whose front end the log-mel tests below look into."""
    return load_classifier(str(tiny_clap), export_dir, backend="torch", device="cpu", keep_prompts=False)


@pytest.fixture(scope="module")
def onnx_classifier(tiny_clap, export_dir):
    return load_classifier(str(tiny_clap), export_dir, backend="onnx", keep_prompts=False)


@pytest.fixture(scope="module")
def openvino_classifier(tiny_clap, export_dir):
    pytest.importorskip("openvino", reason="openvino does not install on this platform")
    return load_classifier(str(tiny_clap), export_dir, backend="openvino", keep_prompts=False)


BACKENDS = {"torch, numpy log-mel in threads": ("classifier", False),
            "torch, torch log-mel in batches": ("classifier", True),  # a GPU's path, on the CPU
            "onnx": ("onnx_classifier", False),
            "openvino": ("openvino_classifier", False)}


def _clip(seconds, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 48000)) / 48000
    return (0.2 * np.sin(2 * np.pi * rng.uniform(100, 4000) * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_scores_equal_the_zero_shot_pipeline_within_1e_4(tiny_clap, request, tmp_path, monkeypatch, backend):
    fixture, mel_on_device = BACKENDS[backend]
    classifier = request.getfixturevalue(fixture)
    if mel_on_device:
        monkeypatch.setattr(classifier.towers, "mel_on_device", True)
    pipe = pipeline("zero-shot-audio-classification", model=str(tiny_clap), device="cpu")
    labeler = Labeler(classifier, batch_size=4)
    clips = {f"{s}s": _clip(s, seed) for seed, s in enumerate([0.5, 3.0, 5.0, 9.5, 10.0])}
    import soundfile as sf

    uris = []
    for name, audio in clips.items():
        path = tmp_path / f"{name}.wav"
        sf.write(path, audio, 48000, subtype="FLOAT")
        uris.append(path.as_uri())
    results = list(labeler.label(uris, classifier.label_embeddings(taxonomy_from_csv(",".join(LABELS))), open_local))
    for result, audio in zip(results, clips.values()):
        expected = {r["label"]: r["score"] for r in pipe(audio, candidate_labels=LABELS)}
        assert result.ok, result.error
        assert len(result.segments) == 1
        np.testing.assert_allclose(result.scores, [expected[label] for label in LABELS], atol=1e-4)
        assert result.scores.sum() == pytest.approx(1.0)


def test_batching_does_not_change_results(classifier, tmp_path):
    uris = [write(tmp_path / f"{i}.wav", seconds=2 + 7 * i, rate=22050, freq=200 * (i + 1)).as_uri() for i in range(3)]
    tax = classifier.label_embeddings(taxonomy_from_csv(",".join(LABELS)))
    one = list(Labeler(classifier, batch_size=1).label(uris, tax, open_local))
    many = list(Labeler(classifier, batch_size=16).label(uris, tax, open_local))
    for a, b in zip(one, many):
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)


def test_results_are_deterministic_for_long_files(classifier, tmp_path):
    uri = write(tmp_path / "long.flac", seconds=33.0, rate=44100).as_uri()
    tax = classifier.label_embeddings(taxonomy_from_csv(",".join(LABELS)))
    first, second = (next(Labeler(classifier).label([uri], tax, open_local)) for _ in range(2))
    assert [(s.start_s, s.end_s) for s in first.segments] == [(0, 10), (10, 20), (20, 30), (23, 33)]
    np.testing.assert_array_equal(first.scores, second.scores)
    np.testing.assert_allclose(first.scores, np.mean([s.scores for s in first.segments], axis=0))


def test_label_embeddings_are_computed_once_per_taxonomy(classifier, monkeypatch):
    tax = taxonomy_from_csv("a,b")
    first = classifier.label_embeddings(tax)
    monkeypatch.setattr(classifier, "_embed_labels", lambda prompts: pytest.fail("re-encoded the labels"))
    assert classifier.label_embeddings(taxonomy_from_csv("a,b")) is first


def test_multi_prompt_label_is_the_normalised_mean_of_its_prompts(classifier):
    single = classifier.label_embeddings(Taxonomy(name="x", template="{}", labels=["a dog", "a puppy"]))
    multi = classifier.label_embeddings(Taxonomy(name="y", labels=[{"name": "dog", "prompts": ["a dog", "a puppy"]}]))
    mean = single.mean(axis=0)
    np.testing.assert_allclose(multi[0], mean / np.linalg.norm(mean), atol=1e-6)


def _tone(seconds, seed, amplitude=1.0):
    """A pure tone, no noise: its spectrum falls to the -100 dB floor, where float32 rounding shows."""
    t = np.arange(int(seconds * 48000)) / 48000
    return (amplitude * np.sin(2 * np.pi * np.random.default_rng(seed).uniform(100, 4000) * t)).astype(np.float32)


SOUNDS = {"tone + noise": _clip, "pure tone": _tone, "noise": lambda seconds, seed: np.random.default_rng(seed)
          .standard_normal(int(seconds * 48000)).astype(np.float32)}


@pytest.mark.parametrize("sound", SOUNDS)
@pytest.mark.parametrize("samples", [1, 480, 48000 * 3 + 7, 480000 - 1, 480000])
def test_log_mel_of_a_batch_in_torch_is_within_1e_4_of_the_numpy_one_and_the_extractors(classifier, sound, samples):
    """The path a GPU takes, run here on the CPU: clips shorter than the window are repeat-padded,
    in one batch with a full window."""
    audio = SOUNDS[sound](samples / 48000 + 1e-6, samples)[:samples]
    full = _clip(10.0, 99)
    expected = classifier.towers.processor.feature_extractor([audio, full], sampling_rate=48000, return_tensors="np")
    features = classifier.towers._log_mel.torch([audio, full], torch.device("cpu"))
    assert features.dtype == torch.float32
    np.testing.assert_allclose(features.numpy(), expected["input_features"], rtol=0, atol=1e-4)
    numpy_one = np.stack([classifier.towers._log_mel.numpy(audio), classifier.towers._log_mel.numpy(full)])
    np.testing.assert_allclose(features.numpy(), numpy_one, rtol=0, atol=1e-4)


@pytest.mark.parametrize("samples", [1, 480, 48000 * 3 + 7, 480000 - 1, 480000])
def test_log_mel_on_the_cpu_equals_the_models_feature_extractor(classifier, samples):
    assert classifier.towers._log_mel is not None  # the vectorised path is the one under test
    audio = _clip(samples / 48000, samples)[:samples]
    expected = classifier.towers.processor.feature_extractor([audio], sampling_rate=48000, return_tensors="np")
    features = classifier.towers.features(classifier.prepare([audio]))
    assert features.device == classifier.towers.device
    np.testing.assert_array_equal(features.numpy(), expected["input_features"].astype(np.float32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU here")
def test_log_mel_is_computed_on_the_gpu(tiny_clap, classifier, export_dir, monkeypatch):
    gpu = load_classifier(str(tiny_clap), export_dir, device="cuda", keep_prompts=False).towers
    audio = _clip(3.0, 1)
    expected = classifier.towers.features(classifier.prepare([audio]))
    monkeypatch.setattr(np.fft, "rfft", lambda *a, **k: pytest.fail("numpy FFT on a GPU classifier"))
    prepared = gpu.prepare([audio])
    assert prepared[0].ndim == 1  # raw samples: nothing computed in the decode threads
    features = gpu.features(prepared)
    assert features.is_cuda
    np.testing.assert_allclose(features.cpu().numpy(), expected.numpy(), rtol=0, atol=1e-4)


@pytest.mark.parametrize("samples", [1, 480, 48000 * 3 + 7, 480000 - 1, 480000])
def test_onnx_front_end_read_from_the_export_equals_the_models_feature_extractor(classifier, onnx_classifier, samples):
    audio = _clip(samples / 48000, samples)[:samples]
    expected = classifier.towers.processor.feature_extractor([audio], sampling_rate=48000, return_tensors="np")
    assert isinstance(onnx_classifier.towers._log_mel, LogMel)  # numpy alone, from front_end.npz
    np.testing.assert_array_equal(np.stack(onnx_classifier.prepare([audio])), expected["input_features"])
