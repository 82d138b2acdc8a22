"""The process a command runs in: quiet libraries, decoders kept off the terminal, one BLAS thread
for commands that run the model, and no last garbage collections at exit."""

from __future__ import annotations

import gc
import os
import sys


def quiet_libraries() -> None:
    """Silence what third-party libraries print on a normal run (transformers' load reports and
    progress bars, Python warnings); soundtag's own progress and summary say what matters."""
    import logging
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)


def silence_native_stderr() -> None:
    """Decoders in C (mpg123 inside libsndfile, FFmpeg) print warnings such as ID3 complaints
    straight to file descriptor 2, over the progress bar. Point that descriptor at /dev/null and
    keep Python's own stderr, soundtag's output, on the terminal."""
    sys.stderr.flush()
    terminal = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    sys.stderr = os.fdopen(terminal, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace")


def one_blas_thread() -> None:
    """For commands that run the model, before numpy loads: its OpenBLAS spreads each small product
    (a window's mel projection, a batch's scores) over every core, then spins its idle threads,
    taking cores from torch (0.5 s of a 12 s cold run of 48 clips). An explicit setting wins."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def freeze_for_exit() -> None:
    """The process ends here. Python's last collections would walk every object torch and
    transformers made (1 s at exit once they are loaded); frozen objects are skipped."""
    gc.freeze()
