"""The one labeling code path, shared by ``soundtag run`` and the Celery task.

preprocess (threads: read, decode, resample, window, features) → forward (audio tower, in
batches of windows) → postprocess (scores per window, aggregated per file). Errors of one file
become a failed FileResult; they never abort the others. Only a TransientReadError (the storage
is down, no file's fault) stops the batch.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from soundtag.errors import AudioError, ReadError, TransientReadError, describe
from worker.audio import decode, windows
from worker.clap import Classifier, score

Reader = Callable[[str], bytes]


@dataclass
class Segment:
    start_s: float
    end_s: float
    scores: np.ndarray
    similarity: np.ndarray
    embedding: np.ndarray | None = None  # the window's audio embedding, kept for relabel and search


@dataclass
class FileResult:
    """Everything learned about one file: metadata, and either scores or the reason it failed."""

    uri: str
    error: str | None = None
    duration_s: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    content_hash: str | None = None
    scores: np.ndarray | None = None
    similarity: np.ndarray | None = None
    segments: list[Segment] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Prepared:
    result: FileResult
    spans: list[tuple[float, float]] = field(default_factory=list)
    features: np.ndarray | None = None


def aggregate(segments: list[Segment]) -> tuple[np.ndarray, np.ndarray]:
    """File-level result: the mean over windows of scores and of similarities. Windows are all
    the same length (the last is end-aligned), so a plain mean weighs every second alike."""
    return (np.mean([s.scores for s in segments], axis=0),
            np.mean([s.similarity for s in segments], axis=0))


class Labeler:
    """Binds a classifier to the window settings; ``label`` runs the pipeline over many files."""

    def __init__(self, classifier: Classifier, *, batch_size: int = 16, window_s: float | None = None,
                 hop_s: float | None = None, decode_threads: int = 2,
                 max_duration_s: float = float("inf")):
        self.classifier = classifier
        self.batch_size = batch_size
        self.window_s = window_s or classifier.max_length_s
        if self.window_s > classifier.max_length_s:
            raise ValueError(f"window {self.window_s} s is longer than the model's {classifier.max_length_s} s")
        self.hop_s = hop_s or self.window_s
        self.decode_threads = decode_threads
        self.max_duration_s = max_duration_s

    def _prepare(self, uri: str, read: Reader) -> _Prepared:
        result = FileResult(uri)
        try:
            data = read(uri)
            result.content_hash = hashlib.sha256(data).hexdigest()
            audio = decode(data, self.classifier.sampling_rate, self.max_duration_s)
            result.duration_s, result.sample_rate, result.channels = (
                audio.duration_s, audio.source_rate, audio.channels)
            parts = windows(audio.samples, audio.sample_rate, self.window_s, self.hop_s)
            features = self.classifier.features([w.samples for w in parts])
            return _Prepared(result, [(w.start_s, w.end_s) for w in parts], features)
        except (AudioError, ReadError) as exc:
            result.error = str(exc)
        except TransientReadError:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoder surprise is this file's failure alone
            result.error = describe(exc)
        return _Prepared(result)

    def label(self, uris: Iterable[str], labels: np.ndarray, read: Reader) -> Iterator[FileResult]:
        """Yield one FileResult per uri, in order, scored against ``labels`` (the taxonomy's
        label embeddings). Decoding runs ahead in threads while the model works on the previous
        batch."""
        lookahead = max(2 * self.batch_size, 2 * self.decode_threads)
        with ThreadPoolExecutor(self.decode_threads, thread_name_prefix="decode") as pool:
            pending: deque[Future[_Prepared]] = deque()
            waiting: deque[_Prepared] = deque()  # decoded, windows not yet all scored
            queued_windows = 0
            source = iter(uris)

            def refill() -> None:
                while len(pending) < lookahead:
                    uri = next(source, None)
                    if uri is None:
                        return
                    pending.append(pool.submit(self._prepare, uri, read))

            refill()
            while pending or waiting:
                # Gather prepared files until one batch of windows is ready (or input ends).
                while pending and queued_windows < self.batch_size:
                    prepared = pending.popleft().result()
                    refill()
                    waiting.append(prepared)
                    queued_windows += len(prepared.spans)
                queued_windows -= self._forward(waiting, labels)
                while waiting and (not waiting[0].spans or len(waiting[0].result.segments) == len(waiting[0].spans)):
                    done = waiting.popleft()
                    if done.result.ok:
                        done.result.scores, done.result.similarity = aggregate(done.result.segments)
                    done.features = None
                    yield done.result

    def _forward(self, waiting: Iterable[_Prepared], labels: np.ndarray) -> int:
        """Run the audio tower on up to batch_size unscored windows; returns how many it scored."""
        owners, feats = [], []
        for prepared in waiting:
            have = len(prepared.result.segments)
            for index in range(have, len(prepared.spans)):
                if len(feats) == self.batch_size:
                    break
                owners.append((prepared, index))
                feats.append(prepared.features[index])
        if not feats:
            return 0
        embeddings = self.classifier.embed_audio(np.stack(feats))
        scores, similarity = score(embeddings, labels, self.classifier.logit_scale)
        for (prepared, index), s, sim, embedding in zip(owners, scores, similarity, embeddings):
            start, end = prepared.spans[index]
            prepared.result.segments.append(Segment(start, end, s, sim, embedding))
        return len(feats)
