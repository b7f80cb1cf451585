"""Where tiling tasks run: the threads of this process (small jobs) or a Dask cluster.

:func:`tile_slides` submits two kinds of task (plan a slide, write a shard)
with a priority and consumes them as they finish. Both executors here offer
the same four operations (``threads``, ``submit``, ``cancel``, ``completed``):

* :class:`ThreadExecutor`: ``threads`` threads of the calling process pulling
  tasks by priority (highest first, then submission order). No process is
  started and Dask is not imported, which saves the cluster's start-up (worker
  processes importing the engine: seconds on a busy machine) when a job is
  small. The slow parts of a task (JPEG decoding and encoding, resizing,
  file reads) run in C without the GIL.
* :class:`DaskExecutor`: a ``distributed.Client``; tasks are Dask futures.

:func:`choose_in_process` says which one ``wsi-engine tile`` uses by default.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

IN_PROCESS_MAX_BYTES = 256 * 2**20
"""Slides adding up to at most this many bytes are tiled by threads of the calling process.

Above it, the default is a local cluster of worker processes. Measured on a 2-core VM
(``tools/bench_tiling.py --whole-command``): starting 2 worker processes costs 2-4 s, which
threads recover only on jobs of thousands of patches that need resampling."""


class ThreadTask:
    """One task of a :class:`ThreadExecutor`: ``status`` is pending, finished, error or cancelled."""

    def __init__(self, key: str, function: Callable[[Any], Any], argument: Any):
        self.key = key
        self.status = "pending"
        self._call = (function, argument)
        self._value: Any = None

    def result(self) -> Any:
        if self.status != "finished":
            raise RuntimeError(f"task {self.key} is {self.status}")
        return self._value

    def exception(self) -> BaseException | None:
        return self._value if self.status == "error" else None

    def run(self) -> None:
        function, argument = self._call
        self._call = None  # type: ignore[assignment]
        try:
            self._value, self.status = function(argument), "finished"
        except Exception as error:  # reported to the consumer like a failed Dask future
            self._value, self.status = error, "error"


class ThreadExecutor:
    """Tasks run by ``threads`` threads of this process, highest priority first."""

    def __init__(self, threads: int):
        self.threads = max(1, threads)
        self._condition = threading.Condition()
        self._queue: list[tuple[int, int, ThreadTask]] = []
        self._done: deque[ThreadTask] = deque()
        self._pending = 0
        self._order = itertools.count()
        self._closed = False
        self._workers = [
            threading.Thread(target=self._work, name=f"wsi-engine-tile-{i}", daemon=True)
            for i in range(self.threads)
        ]
        for worker in self._workers:
            worker.start()

    def submit(
        self, function: Callable[[Any], Any], argument: Any, key: str, priority: int
    ) -> ThreadTask:
        task = ThreadTask(key, function, argument)
        with self._condition:
            heapq.heappush(self._queue, (-priority, next(self._order), task))
            self._pending += 1
            self._condition.notify_all()
        return task

    def cancel(self, tasks: Iterable[ThreadTask]) -> None:
        """Cancel the tasks that have not started (a running task finishes)."""
        with self._condition:
            for task in tasks:
                if task.status == "pending":
                    task.status = "cancelled"

    def completed(self) -> Iterator[ThreadTask]:
        """Each task as it finishes (cancelled ones too), until none is left, including tasks
        submitted while iterating."""
        while True:
            with self._condition:
                while not self._done and self._pending:
                    self._condition.wait()
                if not self._done:
                    return
                task = self._done.popleft()
                self._pending -= 1
            yield task

    def close(self) -> None:
        with self._condition:
            self._closed = True
            for _, _, task in self._queue:
                task.status = "cancelled"
            self._queue.clear()
            self._condition.notify_all()
        for worker in self._workers:
            worker.join()

    def __enter__(self) -> ThreadExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _work(self) -> None:
        while True:
            with self._condition:
                while not self._queue and not self._closed:
                    self._condition.wait()
                if self._closed:
                    return
                _, _, task = heapq.heappop(self._queue)
            if task.status == "pending":
                task.run()
            with self._condition:
                self._done.append(task)
                self._condition.notify_all()


class DaskExecutor:
    """Tasks as futures of a ``distributed.Client``."""

    def __init__(self, client: Any):
        from distributed import as_completed

        self.client = client
        self.threads = sum(client.nthreads().values()) or 1
        self._completed = as_completed(with_results=False)

    def submit(self, function: Callable[[Any], Any], argument: Any, key: str, priority: int) -> Any:
        future = self.client.submit(function, argument, key=key, priority=priority)
        self._completed.add(future)
        return future

    def cancel(self, futures: Iterable[Any]) -> None:
        self.client.cancel(list(futures))

    def completed(self) -> Iterator[Any]:
        return iter(self._completed)


def choose_in_process(paths: Sequence[Path], workers: int | None, scheduler: Any) -> bool:
    """Whether a run without ``scheduler`` should use threads of this process.

    Yes when no worker count was asked for and the slides hold at most
    :data:`IN_PROCESS_MAX_BYTES` in all.
    """
    if scheduler is not None or workers is not None:
        return False
    total = 0
    for path in paths:
        try:
            total += Path(path).stat().st_size
        except OSError:
            continue
    return total <= IN_PROCESS_MAX_BYTES
