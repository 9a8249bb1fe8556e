"""A Dask distributed client for a batch: a local cluster sized to the cores, or one by address.

Each worker runs one raster (or one block of rows) at a time, so a worker's memory is that of one
single-raster run; the model inside it gets ``model_threads`` CPU threads. A local cluster is sized
so that ``workers x model_threads`` does not exceed the cores:

    workers       = min(rasters, cores // model_threads)   (model_threads given)
    model_threads = max(1, cores // workers)               (otherwise; workers = min(rasters, cores))

On a cluster given by address the workers are whatever was started there (start them with
``--nthreads 1``); a task whose model threads are not given takes its worker's cores divided by
the worker's threads.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

from ..errors import InputError
from ..models.runtime import usable_cores

CONNECT_TIMEOUT_S = 20
_CANCEL_POLL_S = 0.5


@dataclass(frozen=True)
class ClusterInfo:
    """The client of a batch and what was decided about it."""

    client: object
    workers: int
    model_threads: int | None
    dashboard: str | None
    cancel_event: str
    note: str
    progress_queue: str = ""


def local_sizing(n_tasks: int, workers: int | None, model_threads: int | None,
                 cores: int | None = None) -> tuple[int, int, str | None]:
    """Workers and model threads of a local cluster (formulas in the module docstring), and a
    note when the user's choice oversubscribes the cores."""
    cores = cores or usable_cores()
    n_tasks = max(1, n_tasks)
    for what, value in (("Workers", workers), ("Threads per worker", model_threads)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise InputError(f"{what}: expected a whole number >= 1, found {value!r}.")
    if workers is None:
        workers = max(1, min(n_tasks, cores // model_threads)) if model_threads else \
            max(1, min(n_tasks, cores))
    if model_threads is None:
        model_threads = max(1, cores // workers)
    note = None
    if workers * model_threads > cores:
        note = (f"{workers} workers x {model_threads} model threads = "
                f"{workers * model_threads} threads on {cores} cores: oversubscribed, each "
                "raster will run slower than it could.")
    return workers, model_threads, note


@contextmanager
def open_cluster(scheduler: str | None, n_tasks: int, *, workers: int | None = None,
                 model_threads: int | None = None, processes: bool = True) -> Iterator[ClusterInfo]:
    """A client on the scheduler at ``scheduler``, or on a new local cluster (closed on exit).

    ``processes=False`` runs the local workers as threads of this process (inside QGIS, whose
    executable cannot start Python worker processes).
    """
    from distributed import Client, Event, LocalCluster

    run_id = uuid.uuid4().hex
    event_name, queue_name = f"landslide-mapper-cancel-{run_id}", f"landslide-mapper-{run_id}"
    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise InputError(
                f"Scheduler {scheduler}: expected a running Dask scheduler at that address, "
                f"found none answering within {CONNECT_TIMEOUT_S} s ({exc}). Start one with "
                "'dask scheduler' or leave --scheduler out for a local cluster.") from exc
        with client:
            try:
                client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
            except TimeoutError as exc:
                raise InputError(
                    f"Scheduler {scheduler}: expected at least one worker, found none within "
                    f"{CONNECT_TIMEOUT_S} s. Start workers with 'dask worker {scheduler} "
                    "--nthreads 1'.") from exc
            n_workers = len(client.scheduler_info().get("workers", {}))
            Event(event_name, client=client).clear()
            yield ClusterInfo(client, n_workers, model_threads, _dashboard(client), event_name,
                              f"Scheduler {scheduler}: {n_workers} worker"
                              f"{'s' if n_workers != 1 else ''}.", queue_name)
        return
    n_workers, threads, note = local_sizing(n_tasks, workers, model_threads)
    with _workers_ignore_ctrl_c(processes):
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=processes,
                               dashboard_address=":0",  # a free port: several batches may run
                               silence_logs=logging.ERROR)
    try:
        with Client(cluster) as client:
            Event(event_name, client=client).clear()
            text = (f"Local cluster: {n_workers} worker{'s' if n_workers != 1 else ''} x "
                    f"{threads} model thread{'s' if threads != 1 else ''}.")
            yield ClusterInfo(client, n_workers, threads, _dashboard(client), event_name,
                              text + (f" {note}" if note else ""), queue_name)
    finally:
        cluster.close()


@contextmanager
def _workers_ignore_ctrl_c(processes: bool) -> Iterator[None]:
    """Start local worker processes with SIGINT ignored (inherited across exec; Python then
    installs no KeyboardInterrupt handler): Ctrl-C in a terminal reaches the whole process group,
    and must cancel the batch through this process, not kill the workers mid-write."""
    if not processes or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _dashboard(client) -> str | None:
    """The dashboard's address when the scheduler serves one."""
    try:
        services = client.scheduler_info().get("services", {})
    except Exception:  # an old or restricted scheduler: no address to print
        return None
    return client.dashboard_link if "dashboard" in services else None


def cancel_flag(event_name: str) -> Callable[[], bool]:
    """On a worker: the task's ``is_canceled``, asking the scheduler at most every half second."""
    from distributed import Event

    event = Event(event_name)
    state = {"last": 0.0, "set": False}

    def is_canceled() -> bool:
        now = time.monotonic()
        if not state["set"] and now - state["last"] >= _CANCEL_POLL_S:
            state["last"] = now
            state["set"] = bool(event.is_set())
        return state["set"]

    return is_canceled


def worker_model_threads(model_threads: int | None) -> int | None:
    """On a worker: the model threads of one task (the worker's cores over its task slots)."""
    if model_threads is not None:
        return model_threads
    try:
        from distributed import get_worker

        slots = max(1, int(get_worker().state.nthreads))
    except Exception:  # not on a worker (a direct call): the engine's default
        return None
    return max(1, usable_cores() // slots)


def progress_sender(queue_name: str, key: str) -> Callable[[float], None]:
    """On a worker: a task's ``progress``, sending ``(key, fraction)`` to the client at most
    every half second (progress is never worth failing a raster over)."""
    from distributed import Queue

    queue = Queue(queue_name)
    state = {"last": 0.0}

    def progress(fraction: float) -> None:
        now = time.monotonic()
        if now - state["last"] >= _CANCEL_POLL_S:
            state["last"] = now
            try:
                queue.put((key, float(fraction)))
            except Exception:  # noqa: BLE001 (a lost message only delays the bar)
                pass

    return progress


def received_progress(client, queue_name: str) -> dict[str, float]:
    """On the client: the latest fraction each task sent since the last call."""
    from distributed import Queue

    try:
        items = Queue(queue_name, client=client).get(batch=True)
    except Exception:  # noqa: BLE001 (no progress this time; the tasks go on)
        return {}
    return {key: fraction for key, fraction in items}
