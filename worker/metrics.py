"""A worker's Prometheus metrics: the files its processes labeled, failed and skipped, how long
each stage took, the model they hold; served by ``soundtag worker`` on SOUNDTAG_METRICS_PORT.

Under a prefork pool every child counts into its own files in PROMETHEUS_MULTIPROC_DIR
(prometheus_client's multiprocess mode) and Celery's main process serves their sum. The mode is
chosen when prometheus_client is first imported, so ``soundtag worker`` sets the folder before
Celery starts (``multiprocess_dir``). Names follow Prometheus' conventions: units in the names,
labels from small fixed sets, never a URI or a message.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from celery import signals
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, start_http_server

from soundtag.settings import Settings
from soundtag.states import Failure, FileState

log = logging.getLogger(__name__)

FILES = Counter("soundtag_files_total", "Files of the batches this worker received: done, failed, or skipped "
                "(finished already, held by a live worker, or their job no longer active)", ["status"])
WINDOWS = Counter("soundtag_windows_total", "Windows of labeled files saved")
FAILURES = Counter("soundtag_failures_total", "Files failed, by kind", ["reason"])
LEASES_TAKEN_BACK = Counter("soundtag_leases_taken_back_total",
                            "Files taken back from workers that stopped renewing their leases (died)")
RESULTS_DROPPED = Counter("soundtag_results_dropped_total",
                          "Files labeled whose results were not saved: the worker's lease on them was taken "
                          "back meanwhile, and their new holder labels them")
BATCH_SECONDS = Histogram("soundtag_batch_seconds", "Seconds a batch (one message) took to label",
                          buckets=(1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 3600))
DECODE_SECONDS = Histogram("soundtag_decode_seconds", "Seconds to read, decode and window one file, without "
                           "the waits for the model to take its windows",
                           buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
MODEL_SECONDS = Histogram("soundtag_model_seconds", "Seconds of one forward pass of the audio tower over a "
                          "batch of windows, scores included",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
SAVE_SECONDS = Histogram("soundtag_save_seconds", "Seconds to save one transaction of results",
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
# livemax: one series per model whatever the processes holding it, gone with the last of them.
MODEL_INFO = Gauge("soundtag_model_info", "The model a worker process holds (1)",
                   ["model", "backend", "dtype", "device"], multiprocess_mode="livemax")
CUDA_MEMORY = Gauge("soundtag_cuda_memory_bytes", "CUDA memory of this worker's processes: allocated to "
                    "tensors, and reserved by torch's allocator (what the GPU sees in use)",
                    ["device", "kind"], multiprocess_mode="livesum")

# Every status and reason from the start, so that rate() sees a failure's first increase.
for _status in (FileState.DONE, FileState.FAILED, FileState.SKIPPED):
    FILES.labels(_status)
for _reason in Failure:
    FAILURES.labels(_reason)


def multiprocess_dir() -> str:
    """A new, empty folder for the worker's processes' metric files."""
    return tempfile.mkdtemp(prefix="soundtag-metrics-")


def failed(count: int, reason: Failure) -> None:
    FILES.labels(FileState.FAILED).inc(count)
    FAILURES.labels(reason).inc(count)


@contextmanager
def saving(results: Sequence) -> Iterator[set[str]]:
    """Time the save of ``results`` (model.results FileResults) and count them once saved. The
    caller puts into the yielded set the URIs the save dropped (a lease lost meanwhile): those
    are counted as dropped, not done."""
    dropped: set[str] = set()
    started = time.perf_counter()
    yield dropped
    if not results:
        return
    SAVE_SECONDS.observe(time.perf_counter() - started)
    RESULTS_DROPPED.inc(len(dropped))
    kept = [r for r in results if r.uri not in dropped]
    done = [r for r in kept if r.ok]
    FILES.labels(FileState.DONE).inc(len(done))
    WINDOWS.inc(sum(len(r.segments) for r in done))
    for result in kept:
        if not result.ok:
            failed(1, result.failure or Failure.ERROR)


def model_loaded(model: str, backend: str, dtype: str, device: str) -> None:
    MODEL_INFO.labels(model, backend, dtype, device).set(1)


def observe_cuda_memory() -> None:
    """This process's CUDA memory, when it runs the model on a GPU (torch is imported only there)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return
    device = torch.cuda.current_device()
    CUDA_MEMORY.labels(f"cuda:{device}", "allocated").set(torch.cuda.memory_allocated(device))
    CUDA_MEMORY.labels(f"cuda:{device}", "reserved").set(torch.cuda.memory_reserved(device))


def serve(port: int) -> None:
    """Serve the metrics of every process of this worker on ``port``, on all addresses."""
    registry = None
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:  # started as `celery ... worker`, not `soundtag worker`: this process's own
        log.warning("PROMETHEUS_MULTIPROC_DIR is not set: serving the main process's metrics only "
                    "(start workers with `soundtag worker`)")
    start_http_server(port, **({"registry": registry} if registry else {}))
    log.info("metrics on :%d/metrics", port)


@signals.worker_ready.connect
def _on_ready(**_) -> None:
    # In the main process, once the pool's children are forked: the server's thread is the parent's.
    port = Settings().metrics_port
    if port:
        serve(port)


@signals.worker_process_shutdown.connect
def _on_child_exit(pid=None, **_) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid or os.getpid())
