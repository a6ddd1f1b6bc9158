"""Where a run's logs go: one file per run, the terminal only with --verbose.

TFX, Beam and TensorFlow log through Python (absl) and straight from C++ to
file descriptor 2, and Beam's worker processes inherit the descriptors. So the
capture moves descriptors 1 and 2 (and `sys.stdout`/`sys.stderr`, which
pytest and notebooks replace with objects of their own) onto the log file:
whatever the process and its children write lands there. `terminal` keeps the
process's own standard output for the progress display (`terminal_err` its
standard error); with `verbose` a thread copies the logs there as well.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from typing import Optional, TextIO


def _text(fd: int) -> TextIO:
    return os.fdopen(fd, "w", buffering=1, encoding="utf-8", errors="replace")


class RunLog:
    """Captures the process's output into `path` between `write_to` and
    `close`; with `quiet_exit` (command-line use) also what the interpreter
    writes while it shuts down."""

    def __init__(self, verbose: bool = False, quiet_exit: bool = False):
        self.verbose = verbose
        self._quiet_exit = quiet_exit
        self.path: Optional[str] = None
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        self.terminal: TextIO = _text(os.dup(1))
        self.terminal_err: TextIO = _text(os.dup(2))
        self._saved_fds = (os.dup(1), os.dup(2))
        self._saved_streams = (sys.stdout, sys.stderr)
        self._stream: Optional[TextIO] = None
        self._copier: Optional[threading.Thread] = None

    def write_to(self, path: str) -> None:
        """Sends everything written from now on to `path` (appended), leaving
        the file written so far, if any, complete."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        file_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if self._stream is None:
            self._start()
        self._stream.flush()
        previous = self._copier
        sink = self._copy_to_terminal(file_fd) if self.verbose else file_fd
        os.dup2(sink, 1)
        os.dup2(sink, 2)
        os.close(sink)
        if previous is not None:  # its pipe has no writer left here: it drains and ends
            previous.join(timeout=5)
        self.path = path

    def _start(self) -> None:
        """Python's side of the capture, set once: sys.stdout and sys.stderr
        write to descriptor 2 through one stream that is never closed (so
        handlers made from it stay valid across files), and a handler on the
        root logger, which pytest or a notebook may have taken over, sends
        every record there too."""
        self._stream = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
        sys.stdout = sys.stderr = self._stream
        self._handler = logging.StreamHandler(self._stream)
        self._handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
        logging.getLogger().addHandler(self._handler)

    def _copy_to_terminal(self, file_fd: int) -> int:
        """A pipe whose reader copies each chunk to the file and the terminal."""
        read_fd, write_fd = os.pipe()

        def copy() -> None:
            with os.fdopen(read_fd, "rb", buffering=0) as source:
                while chunk := source.read(65536):
                    os.write(file_fd, chunk)
                    os.write(self.terminal_err.fileno(), chunk)
            os.close(file_fd)

        self._copier = threading.Thread(target=copy, name="run-log-copier", daemon=True)
        self._copier.start()
        return write_fd

    def _detach(self) -> None:
        """Points descriptors 1 and 2 and the Python streams back at the
        originals and lets the copier drain (children still holding the pipe
        keep it open: it is not waited for long)."""
        if self._stream is None:
            return
        self._stream.flush()
        logging.getLogger().removeHandler(self._handler)
        sys.stdout, sys.stderr = self._saved_streams
        os.dup2(self._saved_fds[0], 1)
        os.dup2(self._saved_fds[1], 2)
        self._stream = None
        if self._copier is not None:
            self._copier.join(timeout=5)
            self._copier = None

    def close(self) -> None:
        """Ends the capture; the display's `terminal` stays usable."""
        if not self._saved_fds:
            return
        self._detach()
        for fd in self._saved_fds:
            os.close(fd)
        self._saved_fds = ()
        if self._quiet_exit and self.path:
            atexit.register(_quiet_exit, self.path)

    def __enter__(self) -> "RunLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _quiet_exit(path: str) -> None:
    """Sends what the interpreter writes while it shuts down, after the exit
    handlers (TensorFlow's `AtomicFunction.__del__` complaints), to the log."""
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.dup2(fd, 2)
    os.close(fd)
