"""Server-side batching, in the spirit of tensorflow_model_server --enable_batching.

Concurrent requests to the same signature of the same model version, whose
inputs have the same trailing shapes, are stacked along the batch dimension
into one call, and each caller gets its own rows of the outputs back. A batch
runs when it is full, when it holds every request now in flight for its
signature (a lone caller never waits), or when the oldest request has waited
`batch_timeout_micros`. One thread per signature runs the batches; a request
that arrives while nothing else of its signature is running or queued runs at
once in its own thread, sparing it two thread hand-offs.

The state is bounded: a signature's thread ends after IDLE_SECONDS without a
request, and beyond MAX_KEYS signatures and shapes at once, a new one runs
unbatched, however many names and shapes clients invent.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable, Dict, Hashable, List, Mapping, Set

import numpy as np

MAX_KEYS = 256
IDLE_SECONDS = 10.0
Inputs = Mapping[str, np.ndarray]
Outputs = Dict[str, np.ndarray]


class _Request:
    def __init__(self, inputs: Inputs):
        self.inputs = inputs
        self.rows = len(next(iter(inputs.values())))
        self.done = threading.Event()
        self.outputs: Outputs = {}
        self.error: BaseException = None


class Batcher:
    """Runs `call(inputs)` for many callers, batching them."""

    def __init__(self, max_batch_size: int = 32, batch_timeout_micros: int = 2000):
        self.max_batch_size = max_batch_size
        self.timeout = batch_timeout_micros / 1e6
        self._queues: Dict[Hashable, "queue.Queue[_Request]"] = {}
        self._in_flight: Dict[Hashable, int] = {}  # queued and not yet answered
        self._running_alone: Set[Hashable] = set()
        self._lock = threading.Lock()

    def run(self, key: Hashable, call: Callable[[Inputs], Outputs], inputs: Inputs) -> Outputs:
        """`call(inputs)`, possibly merged with other callers' inputs of `key`."""
        shapes = tuple(sorted((k, np.asarray(v).shape[1:], np.asarray(v).dtype.kind) for k, v in inputs.items()))
        request = _Request(inputs)
        if request.rows >= self.max_batch_size:
            return call(inputs)
        key = (key, shapes)
        with self._lock:
            alone = not self._in_flight.get(key) and key not in self._running_alone
            if alone:
                self._running_alone.add(key)
        if alone:
            try:
                return call(inputs)
            finally:
                with self._lock:
                    self._running_alone.discard(key)
        with self._lock:
            pending = self._queues.get(key)
            if pending is None and len(self._queues) < MAX_KEYS:
                pending = self._queues[key] = queue.Queue()
                threading.Thread(target=self._loop, args=(key, pending, call), daemon=True, name="batcher").start()
            if pending is not None:
                self._in_flight[key] = self._in_flight.get(key, 0) + 1
        if pending is None:
            return call(inputs)  # one signature and shape too many: not batched
        pending.put(request)
        request.done.wait()
        with self._lock:
            self._in_flight[key] -= 1
        if request.error is not None:
            raise request.error
        return request.outputs

    def _loop(self, key: Hashable, pending: "queue.Queue[_Request]", call: Callable[[Inputs], Outputs]) -> None:
        while True:
            try:
                batch: List[_Request] = [pending.get(timeout=IDLE_SECONDS)]
            except queue.Empty:
                with self._lock:  # no caller is between counting itself in and queueing
                    if not self._in_flight[key]:
                        del self._queues[key], self._in_flight[key]
                        return
                continue
            rows = batch[0].rows
            deadline = time.monotonic() + self.timeout
            while rows < self.max_batch_size:
                with self._lock:
                    if len(batch) >= self._in_flight[key]:
                        break  # nobody else is waiting: do not hold this batch back
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    nxt = pending.get(timeout=left)
                except queue.Empty:
                    break
                batch.append(nxt)
                rows += nxt.rows
            self._run_batch(batch, call)

    @staticmethod
    def _run_batch(batch: List[_Request], call: Callable[[Inputs], Outputs]) -> None:
        if len(batch) == 1:
            Batcher._run_one(batch[0], call)
            return
        merged = {k: np.concatenate([np.asarray(r.inputs[k]) for r in batch]) for k in batch[0].inputs}
        try:
            outputs = call(merged)
        except Exception:  # one bad request must not fail the others: run them alone
            outputs = None
        total = sum(r.rows for r in batch)
        if outputs is None or any(np.ndim(v) == 0 or len(v) != total for v in outputs.values()):
            # A failed batch, or outputs that are not one row per input row
            # (a sum over the batch, say): each request is answered alone.
            for request in batch:
                Batcher._run_one(request, call)
            return
        start = 0
        for request in batch:
            request.outputs = {k: v[start : start + request.rows] for k, v in outputs.items()}
            start += request.rows
            request.done.set()

    @staticmethod
    def _run_one(request: _Request, call: Callable[[Inputs], Outputs]) -> None:
        try:
            request.outputs = call(request.inputs)
        except BaseException as e:  # handed to the caller's thread
            request.error = e
        request.done.set()

