"""What a person sees while a pipeline runs: one line per component.

TFX's LocalDagRunner logs `Component <id> is running.` and `... is finished.`
around each component it launches; `ComponentWatcher`, a logging handler,
turns those records and the Trainer's step records (`modeling.training`)
into calls on a display. On a terminal, `LiveDisplay` (rich) redraws the
running component in place with a spinner or a bar; elsewhere (CI, a pipe, a
file) `PlainDisplay` prints plain lines.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Callable, Mapping, Optional, TextIO

_RUNNING = "Component %s is running."
_FINISHED = "Component %s is finished."
_MARKS = {"ran": "✓", "cached": "✓", "failed": "✗"}


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a component ended: `state` is ran, cached, failed or ML
    Metadata's own state name (lower case); `result` one line on its outputs."""

    state: str
    result: str = ""


class PipelineFailed(RuntimeError):
    """A component of a local run failed; the message says which, why, and
    where the full log is."""

    def __init__(self, pipeline_name: str, component: Optional[str], message: str, log_path: Optional[str]):
        self.pipeline_name, self.component, self.message, self.log_path = pipeline_name, component, message, log_path
        where = f"{component} failed" if component else "the run failed"
        super().__init__(f"{pipeline_name}: {where}: {message}" + (f"\n  full log: {log_path}" if log_path else ""))


def finished_line(name: str, outcome: Outcome, seconds: float) -> str:
    """`✓ Trainer  ran  12.3 s  150 steps, loss 0.4123`."""
    mark = _MARKS.get(outcome.state, "·")
    return f"{mark} {name:<31} {outcome.state:<6} {seconds:6.1f} s  {outcome.result}".rstrip()


class PlainDisplay:
    """Plain lines, for output that is not a terminal: a line when a component
    starts, one when it ends, and the Trainer's steps at each quarter."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self._lock = threading.Lock()
        self._quarter = self._done = 0

    def print(self, text: str) -> None:
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()

    def started(self, name: str, detail: str = "") -> None:
        self._quarter = self._done = 0
        self.print(f"  {name} running{' (' + detail + ')' if detail else ''}")

    def progress(self, name: str, done: int, total: int, text: str) -> None:
        if done < self._done:  # a new bar: the Tuner's next trial
            self._quarter = 0
        self._done = done
        quarter = 4 * done // max(total, 1)
        if quarter > self._quarter and done < total:
            self._quarter = quarter
            self.print(f"  {text}")

    def finished(self, name: str, outcome: Outcome, seconds: float) -> None:
        self.print(finished_line(name, outcome, seconds))

    def close(self) -> None:
        pass


class LiveDisplay(PlainDisplay):
    """The running component redrawn in place under the finished ones."""

    def __init__(self, stream: TextIO):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        super().__init__(stream)
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<31}"),
            BarColumn(),
            TextColumn("{task.fields[text]}"),
            TimeElapsedColumn(),
            console=Console(file=stream, highlight=False),
            transient=True,
            # The run's logs go to its log file, not through the display.
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._progress.start()
        self._task: Optional[int] = None

    def print(self, text: str) -> None:
        self._progress.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def started(self, name: str, detail: str = "") -> None:
        self._drop_task()
        self._task = self._progress.add_task(name, total=None, text=detail)

    def progress(self, name: str, done: int, total: int, text: str) -> None:
        if self._task is not None:
            # "Trainer: step 5 of 20, ..." next to "Trainer" shows as "step 5 of 20, ...";
            # "Tuner trial 2 of 3: step ..." keeps its trial.
            shown = text[len(name) + 2:] if text.startswith(f"{name}: ") else text
            self._progress.update(self._task, completed=done, total=total, text=shown)

    def finished(self, name: str, outcome: Outcome, seconds: float) -> None:
        self._drop_task()
        super().finished(name, outcome, seconds)

    def _drop_task(self) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None

    def close(self) -> None:
        self._drop_task()
        self._progress.stop()


def display_for(stream: TextIO, live: bool = True) -> PlainDisplay:
    """A live display when `stream` is a terminal (and `live`), plain lines otherwise."""
    return LiveDisplay(stream) if live and stream.isatty() else PlainDisplay(stream)


class ComponentWatcher(logging.Handler):
    """Follows the components of one pipeline run through their log records.

    `outcome(node_id)` reads how a finished component ended (ran or cached)
    and what it produced; `details` adds text to a component's running line
    (the size of the data an ExampleGen reads, say).
    """

    def __init__(
        self,
        display: PlainDisplay,
        outcome: Callable[[str], Optional[Outcome]],
        details: Mapping[str, str] = {},
    ):
        super().__init__(logging.INFO)
        self.display = display
        self._outcome = outcome
        self._details = details
        self.current: Optional[str] = None
        self.started_at = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        progress = getattr(record, "progress", None)
        if progress is not None:
            if self.current is not None:
                self.display.progress(self.current, *progress, record.getMessage())
        elif record.msg == _RUNNING and record.args:
            self.current, self.started_at = str(record.args[0]), time.monotonic()
            self.display.started(self.current, self._details.get(self.current, ""))
        elif record.msg == _FINISHED and record.args and self.current == record.args[0]:
            name, self.current = self.current, None
            seconds = time.monotonic() - self.started_at
            try:
                found = self._outcome(name) or Outcome("ran", "")
            except Exception as e:  # a summary line is not worth failing a run for
                logging.getLogger(__name__).warning("could not summarise %s: %r", name, e)
                found = Outcome("ran", "")
            self.display.finished(name, found, seconds)

    def failed(self) -> Optional[str]:
        """Reports the component that was running as failed; returns its name
        (None when the failure came between components)."""
        if self.current is None:
            return None
        name, self.current = self.current, None
        self.display.finished(name, Outcome("failed", ""), time.monotonic() - self.started_at)
        return name
