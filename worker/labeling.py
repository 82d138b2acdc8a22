"""The one labeling code path, shared by ``soundtag run`` and the Celery task.

preprocess (threads: read, decode, resample, window, ``Classifier.prepare``, block by block) →
forward (``Classifier.embed_windows``: features on a GPU, then the audio tower, in batches of
windows taken from files as they are decoded) → postprocess (scores per window, aggregated per
file). Memory holds a bounded number of windows whatever a file's length. Errors of one file
become a failed FileResult; they never abort the others. Only a TransientReadError (the storage
is down, no file's fault) stops the batch.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from model.classifier import Classifier, score
from model.results import FileResult, WindowResult, aggregate
from soundtag import recording
from soundtag.audio import AudioWindow, Limits, Windower, open_stream
from soundtag.errors import AudioError, ReadError, TransientReadError, describe
from soundtag.states import Failure
from worker import metrics

Opener = Callable[[str], AbstractContextManager[BinaryIO]]
"""Opens a URI as a seekable binary file; raises ReadError or TransientReadError."""


@dataclass
class _PreparedWindow:
    """One window on its way to the audio tower, as ``Classifier.prepare`` made it."""

    file: _File
    start_s: float
    end_s: float
    prepared: np.ndarray


class _File:
    """A file on its way through the pipeline. Its decode thread puts _PreparedWindows on ``items`` and
    then None; the queue's bound holds that thread back while the model is behind, so a long
    file's features never pile up."""

    def __init__(self, uri: str, capacity: int):
        self.result = FileResult(uri)
        self.items: queue.Queue[_PreparedWindow | None] = queue.Queue(capacity)
        self.windows = 0  # windows taken off `items`
        self.transient: TransientReadError | None = None
        self.waited = 0.0  # seconds its windows waited for the model to take them


class _Cancelled(Exception):
    """``label`` was left early (an exception, or its caller stopped iterating): decoding stops."""


class Labeler:
    """Binds a classifier to the window settings; ``label`` runs the pipeline over many files."""

    def __init__(self, classifier: Classifier, *, batch_size: int = 16, window_s: float | None = None,
                 hop_s: float | None = None, decode_threads: int = 2, limits: Limits = Limits(),
                 rules: recording.Rules = recording.Rules(), roots: tuple[str, ...] = ()):
        self.classifier = classifier
        self.batch_size = batch_size
        self.window_s = window_s or classifier.max_length_s
        if self.window_s > classifier.max_length_s:
            raise ValueError(f"window {self.window_s} s is longer than the model's {classifier.max_length_s} s")
        self.hop_s = hop_s or self.window_s
        self.decode_threads = decode_threads
        self.limits = limits
        self.rules = rules  # how a file's time and site are read, and the roots its site folder is below
        self.roots = list(roots)

    def label(self, uris: Iterable[str], labels: np.ndarray, open_: Opener) -> Iterator[FileResult]:
        """Yield one FileResult per uri, in order, scored against ``labels`` (the taxonomy's label
        embeddings). Files are decoded ahead, in threads, while the model works; a long file's
        windows go to the model batch by batch as they are decoded."""
        # Files are submitted this far ahead; each holds at most a batch of features in its queue.
        lookahead = max(2 * self.batch_size, 2 * self.decode_threads)
        stop = threading.Event()
        pool = ThreadPoolExecutor(self.decode_threads, thread_name_prefix="decode")
        # The pool starts files in submission order, so the file being drained is always one that
        # a thread has started or finished: waiting on it cannot deadlock.
        submitted: deque[_File] = deque()
        scoring: deque[_File] = deque()  # decoded to the end, windows not yet all scored
        batch: list[_PreparedWindow] = []
        source = iter(uris)

        def refill() -> None:
            while len(submitted) < lookahead:
                uri = next(source, None)
                if uri is None:
                    return
                file = _File(uri, self.batch_size)
                pool.submit(self._prepare, file, open_, stop)
                submitted.append(file)

        try:
            refill()
            while submitted:
                file = submitted.popleft()
                refill()
                while (window := file.items.get()) is not None:
                    file.windows += 1
                    batch.append(window)
                    if len(batch) == self.batch_size:
                        self._forward(batch, labels)
                        batch = []
                        yield from _finished(scoring)
                if file.transient is not None:
                    raise file.transient
                scoring.append(file)
                yield from _finished(scoring)
            self._forward(batch, labels)
            yield from _finished(scoring)
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)

    def _prepare(self, file: _File, open_: Opener, stop: threading.Event) -> None:
        """Decode one file into window features on ``file.items``, then its end (None)."""
        result = file.result
        started = time.perf_counter()
        try:
            self._decode(file, open_, stop)
        except _Cancelled:
            return
        except (AudioError, ReadError) as exc:
            result.error = str(exc)
            result.failure = Failure.READ if isinstance(exc, ReadError) else Failure.DECODE
        except TransientReadError as exc:
            file.transient = exc
        except Exception as exc:  # noqa: BLE001 - any decoder surprise is this file's failure alone
            result.error, result.failure = describe(exc), Failure.DECODE
        metrics.DECODE_SECONDS.observe(time.perf_counter() - started - file.waited)
        with suppress(_Cancelled):
            _put(file.items, None, stop)

    def _decode(self, file: _File, open_: Opener, stop: threading.Event) -> None:
        """Hash, then stream: blocks to windows to features, each window handed on as it is cut."""
        result = file.result
        with open_(result.uri) as raw:
            result.content_hash = _sha256(raw)
            when = recording.read(raw, result.uri, self.roots, self.rules)
            result.recorded_at, result.site = when.recorded_at, when.site
            with open_stream(raw, self.classifier.sampling_rate, self.limits) as stream:
                result.sample_rate, result.channels = stream.source_rate, stream.channels
                windower = Windower(stream.sample_rate, self.window_s, self.hop_s)
                sent = 0
                for block in stream.blocks():
                    for window in windower.push(block):
                        self._send(file, window, stop)
                        sent += 1
                for window in windower.finish():
                    self._send(file, window, stop)
                    sent += 1
                result.duration_s = stream.duration_s
        if not sent:  # a few samples that resample to none
            raise AudioError("no audio samples")

    def _send(self, file: _File, window: AudioWindow, stop: threading.Event) -> None:
        prepared = self.classifier.prepare([window.samples])[0]
        started = time.perf_counter()
        _put(file.items, _PreparedWindow(file, window.start_s, window.end_s, prepared), stop)
        file.waited += time.perf_counter() - started

    def _forward(self, batch: list[_PreparedWindow], labels: np.ndarray) -> None:
        """Run the audio tower on a batch of windows and give each its file's next segment."""
        if not batch:
            return
        with metrics.MODEL_SECONDS.time():
            embeddings = self.classifier.embed_windows([w.prepared for w in batch])
            scores, similarity = score(embeddings, labels, self.classifier.logit_scale)
        for window, s, sim, embedding in zip(batch, scores, similarity, embeddings):
            window.file.result.segments.append(WindowResult(window.start_s, window.end_s, s, sim, embedding))


def _finished(scoring: deque[_File]) -> Iterator[FileResult]:
    """Results of the leading files whose windows are all scored. A file that failed after some
    of its windows went to the model (found truncated at its end) keeps none of their scores."""
    while scoring and len(scoring[0].result.segments) == scoring[0].windows:
        result = scoring.popleft().result
        if result.ok:
            scores, similarity = aggregate(np.array([s.scores for s in result.segments]),
                                           np.array([s.similarity for s in result.segments]), [len(result.segments)])
            result.scores, result.similarity = scores[0], similarity[0]
        else:
            result.segments = []
        yield result


def _put(items: queue.Queue, item: _PreparedWindow | None, stop: threading.Event) -> None:
    """Put ``item`` as soon as there is room; raises _Cancelled once ``stop`` is set."""
    while True:
        if stop.is_set():
            raise _Cancelled
        with suppress(queue.Full):
            items.put(item, timeout=0.1)
            return


def _sha256(file: BinaryIO) -> str:
    """The content hash, in one sequential pass before decoding, then back to the start: the
    decoders seek, so hashing what they read would miss or repeat bytes."""
    digest = hashlib.file_digest(file, "sha256").hexdigest()
    file.seek(0)
    return digest
