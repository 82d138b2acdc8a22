"""A worker process's heartbeat: a thread that renews the leases this process holds and takes
back, from any worker that stopped renewing, the files it left queued (db/leases.py). Every live
worker runs one, busy or idle, so a killed worker's files are labeled again within
``lease_s + heartbeat_s`` with no extra process; and a stop signal, which makes the batch in hand
end after its current file (``stopping``).

Started by Celery's signals: in the worker's process for the solo and threads pools, in each
child of a prefork pool (its parent labels nothing and forks new children: it keeps no engine).
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
import time

from celery import signals
from celery.worker import state

from db import leases
from db.jobs import job_spec
from db.schema import engine_for
from soundtag.errors import describe
from soundtag.fleet import Sender
from soundtag.settings import Settings, load_settings
from worker import metrics

log = logging.getLogger(__name__)

_stop = threading.Event()  # set by SIGTERM in a prefork child, where Celery's flag is not
working = threading.Event()  # set while this process labels a batch (worker.tasks)
_started: set[int] = set()  # the pids that run a heartbeat (a forked child starts its own)
_controller = None
_names: dict[int, str] = {}  # identity() of each pid this memory has run as


def identity() -> str:
    """This process, as the leases name it: host, pid and a random suffix drawn once per process
    (a forked child draws its own). Host and pid alone repeat: containers with one hostname, each
    its worker as pid 1."""
    pid = os.getpid()
    # setdefault: the heartbeat thread and a task asking at once still get one name.
    return _names.setdefault(pid, f"{socket.gethostname()}:{pid}:{secrets.token_hex(3)}")


def stopping() -> bool:
    """Whether this worker was asked to stop (SIGTERM: warm shutdown)."""
    # Celery's flags hold an exit code once set, and a warm shutdown's is 0.
    return any(flag is not None and flag is not False for flag in (state.should_stop, state.should_terminate)) \
        or _stop.is_set()


def resend(job_id: str, uris: list[str], settings: Settings, *, one_per_task: bool = False) -> None:
    """Send files of a job to the fleet again, on the job's queue."""
    spec = job_spec(engine_for(settings.database_url), job_id)
    if one_per_task:
        settings = settings.model_copy(update={"files_per_task": 1})
    sender = Sender(job_id, settings, spec.options.get("queue") if spec else None)
    sender.send(uris)
    sender.close()


def beat_once(settings: Settings) -> None:
    """Renew this process's leases, then take back expired ones, one file per task: a batch
    whose worker died is split, so a file that kills workers fails alone (``task_max_attempts``)."""
    engine = engine_for(settings.database_url)
    leases.renew(engine, identity(), settings.lease_s)
    for taken in leases.take_back_expired(engine, lambda job_id, uris: resend(job_id, uris, settings,
                                                                              one_per_task=True)):
        metrics.LEASES_TAKEN_BACK.inc(len(taken.uris))
        log.warning("worker %s was lost: %d files of job %s sent again", taken.worker, len(taken.uris),
                    taken.job_id)


def start(settings: Settings) -> None:
    """Start this process's heartbeat thread, once per process."""
    if os.getpid() in _started:
        return
    _started.add(os.getpid())
    period = min(settings.heartbeat_s, settings.lease_s / 3)

    def run() -> None:
        while True:
            try:
                beat_once(settings)
            except Exception as exc:  # noqa: BLE001 - the next beat tries again; the leases last lease_s
                log.warning("heartbeat: %s", describe(exc))
            time.sleep(period)

    threading.Thread(target=run, name="heartbeat", daemon=True).start()


def _prefork(controller) -> bool:
    from celery.concurrency.prefork import TaskPool

    return isinstance(getattr(controller, "pool", None), TaskPool)


@signals.worker_init.connect
def _remember(sender=None, **_) -> None:
    global _controller
    _controller = sender


@signals.worker_ready.connect
def _on_ready(**_) -> None:
    if not _prefork(_controller):
        start(load_settings())


@signals.worker_process_init.connect
def _on_child(**_) -> None:
    from billiard.process import current_process

    if current_process().name != "MainProcess":  # a prefork child: its parent handles SIGTERM
        signal.signal(signal.SIGTERM, _child_stop)
    start(load_settings())


def _child_stop(signum, _frame) -> None:
    """SIGTERM in a prefork child: a batch in hand ends after its file (``stopping``); an idle
    child ends as it would have without this handler (billiard terminates children so)."""
    _stop.set()
    if not working.is_set():
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


@signals.worker_shutting_down.connect
def _tell_children(**_) -> None:
    """A warm shutdown of a prefork pool reaches its children too, so each gives back its batch
    after the current file instead of finishing it."""
    if _prefork(_controller):
        for pid in _controller.pool.info.get("processes", []):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
