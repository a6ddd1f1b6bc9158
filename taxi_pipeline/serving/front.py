"""The C++ gRPC front (`make native`), started and kept informed by the Python server.

The front owns the public gRPC port, batches Predict calls and runs them in
TensorFlow's C API; everything it does not run, it relays to this process's
gRPC services on a private Unix socket. Python stays the one place that
decides which versions are served: each version it starts serving is announced
to the front (which loads it too), each one it stops serving is withdrawn. The
front is supervised: if it dies it is restarted on its port and told the
versions again; if it keeps dying, the Python server takes the port over.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from taxi_pipeline.serving.monitoring import FrontTally
from taxi_pipeline.settings import REPO_ROOT

NATIVE_FRONT = os.path.join(REPO_ROOT, "build", "native", "serving_front")
# The C API the front runs models with: the installed wheel's, so both run one TensorFlow.
TENSORFLOW_LIBRARY = os.path.join(os.path.dirname(tf.__file__), "libtensorflow_cc.so.2")
_LISTENING = "serving_front listening on port "
# A front that dies more often than this is given up (see NativeFront._exited).
MAX_RESTARTS, RESTART_WINDOW = 3, 60.0


def _shape(shape) -> str:
    """A TensorShapeProto as the control protocol writes it: "-1,2", "" for a scalar, "?" for any rank."""
    return "?" if shape.unknown_rank else ",".join(str(d.size) for d in shape.dim)


def _tally(line: str) -> FrontTally:
    """A `tally` line of the front (tallies.h) as monitoring.py takes it."""
    _, model, version, signature, api, status, count, micros, buckets = line.split("\t")
    return model, version, signature, api, status, int(count), [int(b) for b in buckets.split(",")], float(micros)


def control_block(name: str, number: int, path: str,
                  signature_defs: Mapping[str, meta_graph_pb2.SignatureDef]) -> str:
    """The `load` lines announcing one version (see front.cc); signatures whose
    tensors are not plain named tensors (sparse, ragged) are left to Python."""
    lines = []
    for signature, definition in sorted(signature_defs.items()):
        tensors = [("input", k, v) for k, v in sorted(definition.inputs.items())]
        tensors += [("output", k, v) for k, v in sorted(definition.outputs.items())]
        if all(info.name for _, _, info in tensors):
            lines += [f"{kind}\t{signature}\t{alias}\t{info.name}\t{info.dtype}\t{_shape(info.tensor_shape)}"
                      for kind, alias, info in tensors]
    return "".join(f"{line}\n" for line in [f"load\t{name}\t{number}\t{path}", *lines, "end"])


class NativeFront:
    """The front process, and the versions announced to it."""

    def __init__(self, binary: str, host: str, port: int, max_batch_size: int, batch_timeout_micros: int,
                 max_message_bytes: int, tensorflow_library: Optional[str] = TENSORFLOW_LIBRARY,
                 num_batch_threads: int = 1, max_concurrent_requests: int = 256, grace_seconds: float = 10.0):
        self._socket_dir = tempfile.mkdtemp(prefix="serving-backend-")
        self.backend = f"unix:{os.path.join(self._socket_dir, 'grpc.sock')}"
        self._binary, self._host, self._port = binary, host, port
        self._flags = [
            "--backend", self.backend,
            "--max_batch_size", str(max_batch_size), "--batch_timeout_micros", str(batch_timeout_micros),
            "--max_message_bytes", str(max_message_bytes), "--num_batch_threads", str(num_batch_threads),
            "--max_concurrent_requests", str(max_concurrent_requests),
            "--shutdown_grace_seconds", str(int(math.ceil(grace_seconds))),
        ] + (["--tensorflow_library", tensorflow_library] if tensorflow_library else [])
        self.port: Optional[int] = None
        self.on_give_up: Optional[Callable[[], None]] = None
        self.on_trouble: Optional[Callable[[], None]] = None  # the front died or could not be read
        self._process: Optional[subprocess.Popen] = None
        self._stopping = False
        self._deaths: List[float] = []
        self._lock = threading.Lock()
        self._announced: Dict[Tuple[str, int], str] = {}  # the versions (their blocks) to tell at start
        self._states: Dict[Tuple[str, int], str] = {}  # "loaded" or "failed: why", as the front said
        self._state_changed = threading.Condition(self._lock)
        # The tallies of the requests the front answered (monitoring.py): those
        # of fronts that died, and the latest the running one gave.
        self._dead_tallies: List[FrontTally] = []
        self._tallies: List[FrontTally] = []
        self._tally_lines: Optional[List[str]] = None
        self._tallies_read = threading.Event()
        self._tally_lock = threading.Lock()
        self._scrape_lock = threading.Lock()

    def start(self) -> None:
        """Starts the front and tells it every version announced so far;
        RuntimeError if it does not come up."""
        process = self._spawn()
        threading.Thread(target=self._supervise, args=(process,), name="front-supervisor", daemon=True).start()

    def _spawn(self) -> subprocess.Popen:
        process = subprocess.Popen(self._command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        line = process.stdout.readline()  # or EOF, if it failed
        if not line.startswith(_LISTENING):
            process.wait()
            raise RuntimeError(
                f"the native gRPC front ({self._binary}) did not start (exit code "
                f"{process.returncode}); its error is in the server log"
            )
        self.port = int(line[len(_LISTENING):])
        with self._tally_lock:  # a new front counts from zero
            self._dead_tallies, self._tallies = self._dead_tallies + self._tallies, []
        with self._lock:
            self._process = process
            self._states.clear()
            for block in self._announced.values():
                self._send(block)
        return process

    def _supervise(self, process: subprocess.Popen) -> None:
        """Reads the front's answers; when it dies, restarts it from this
        thread, which outlives each front it starts (the front exits with the
        thread that started it, prctl PR_SET_PDEATHSIG)."""
        while process is not None:
            try:
                self._read(process)
            except Exception:  # never leave a front unsupervised: stop it, and restart it below
                logging.exception("the native gRPC front's answers could not be read; restarting it")
                process.kill()
            process.wait()
            if self._stopping:
                return
            if self.on_trouble:
                self.on_trouble()
            process = self._restarted(process)

    @property
    def pid(self) -> Optional[int]:
        return self._process.pid if self._process else None

    def _command(self) -> list:
        """The front's command line; once it has run, on the port it had."""
        return [self._binary, "--host", self._host, "--port", str(self.port if self.port else self._port),
                *self._flags]

    def _restarted(self, process: subprocess.Popen) -> Optional[subprocess.Popen]:
        """The front died: a new one on its port, or None after MAX_RESTARTS
        deaths within RESTART_WINDOW seconds, when `on_give_up` is called so
        the Python server answers the port itself."""
        now = time.monotonic()
        self._deaths = [t for t in self._deaths if now - t < RESTART_WINDOW] + [now]
        if len(self._deaths) <= MAX_RESTARTS:
            logging.warning("the native gRPC front exited (code %s); restarting it on port %d",
                            process.returncode, self.port)
            try:
                return self._spawn()
            except Exception as e:  # RuntimeError from _spawn, OSError if the binary went
                why = str(e)
        else:
            why = f"it exited {len(self._deaths)} times in {RESTART_WINDOW:.0f} s (last code {process.returncode})"
        logging.error("the native gRPC front is given up: %s; gRPC is answered in Python from now on", why)
        with self._lock:
            self._process = None
        if self.on_give_up:
            self.on_give_up()
        return None

    def available(self, name: str, number: int, path: str,
                  signature_defs: Mapping[str, meta_graph_pb2.SignatureDef]) -> None:
        """Python now serves version `number` of `name`."""
        if any(c in s for s in (name, path) for c in "\t\n"):
            logging.info("model %s version %d runs in Python: its name or path has a tab or newline", name, number)
            return
        block = control_block(name, number, path, signature_defs)
        with self._lock:
            self._announced[(name, number)] = block
            self._send(block)

    def ended(self, name: str, number: int) -> None:
        """Python no longer serves `number` of `name`."""
        with self._lock:
            self._announced.pop((name, number), None)
            self._states.pop((name, number), None)
            self._send(f"unload\t{name}\t{number}\n")

    def state(self, name: str, number: int, timeout: float = 0) -> Optional[str]:
        """"loaded", "failed: …", or None while the front is still loading it."""
        with self._state_changed:
            self._state_changed.wait_for(lambda: (name, number) in self._states, timeout)
            return self._states.get((name, number))

    def _send(self, text: str) -> None:
        """Writes control lines (the caller holds the lock)."""
        if self._process is not None and self._process.poll() is None:
            try:
                self._process.stdin.write(text)
                self._process.stdin.flush()
            except BrokenPipeError:
                pass  # the front is gone; stop() reports nothing more useful

    def tallies(self, timeout: float = 2.0) -> List[FrontTally]:
        """The requests the front answered itself, cumulative since the server
        started (what fronts that died had counted included). Asks the running
        front; if it does not answer in `timeout`, its last answer stands."""
        with self._scrape_lock:  # one question to the front at a time
            return self._ask_tallies(timeout)

    def _ask_tallies(self, timeout: float) -> List[FrontTally]:
        with self._tally_lock:
            self._tally_lines, asked = [], threading.Event()
            self._tallies_read = asked
            with self._lock:
                self._send("tallies\n")
        if asked.wait(timeout):
            with self._tally_lock:
                self._tallies = [_tally(line) for line in self._tally_lines or []]
        with self._tally_lock:
            return self._dead_tallies + self._tallies

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            if line.startswith("tally\t") or line.startswith("tallies_end"):
                with self._tally_lock:
                    if line.startswith("tallies_end"):
                        self._tallies_read.set()
                    elif self._tally_lines is not None:
                        self._tally_lines.append(line.rstrip("\n"))
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 3 or fields[0] not in ("loaded", "failed") or not fields[2].isdecimal():
                logging.info("serving_front: %s", line.rstrip())
                continue
            kind, name, number, why = fields[0], fields[1], int(fields[2]), "\t".join(fields[3:])
            if kind == "loaded":
                logging.info("model %s version %d runs in the native front", name, number)
            else:
                logging.warning("model %s version %d runs in Python: the native front could not load it: %s",
                                name, number, why)
            with self._state_changed:
                self._states[(name, number)] = "loaded" if kind == "loaded" else f"failed: {why}"
                self._state_changed.notify_all()

    def stop(self, grace_seconds: float = 0) -> None:
        """SIGTERM: the front stops accepting calls and lets those in progress
        finish for up to `grace_seconds`, then exits (killed if it does not)."""
        self._stopping = True
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=grace_seconds + 5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.close()

    def close(self) -> None:
        shutil.rmtree(self._socket_dir, ignore_errors=True)
