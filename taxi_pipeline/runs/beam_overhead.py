"""Two fixed costs of in-process Beam that a small local run pays many times.

Beam 2.60 builds a bundle processor for every stage it runs and inspects the
signature of every method of every DoFn in it (`inspect.signature`, about
170,000 calls in one taxi run), and its dill pickler ends every pickle and
unpickle by re-setting dill's logger level, which clears the level cache of
every logger in the process (about 9,600 times a run, each over the
thousands of loggers TensorFlow creates). Neither result can change between
calls: a function's signature is fixed by its code, defaults and
`__signature__`/`__wrapped__`, and setting a logger to the level it already
has changes nothing. `install` makes both computed once; together they take
about 13 s (14%) off the 1x taxi run (bench/README.md), the same pipeline
graph and outputs.

Applied only to the Beam and dill versions whose code was read for this
(`CHECKED_VERSIONS`, the ones uv.lock pins); with any other version `install`
leaves both libraries untouched, so an upgrade can cost speed but never
correctness.
"""

from __future__ import annotations

import logging
import types
import weakref
from typing import Any, Callable, List, Tuple

import apache_beam
import dill
from apache_beam.transforms import core
from dill import _dill

CHECKED_VERSIONS = {"apache_beam": "2.60.0", "dill": "0.3.1.1"}

ArgsDefaults = Tuple[List[str], List[Any]]

_installed = False
# Beam's own, as imported: what the memoized version must always agree with.
BEAM_ARGS_DEFAULTS = core.get_function_args_defaults


def _identity(function: types.FunctionType) -> Tuple[Any, ...]:
    """What `inspect.signature` reads from a function, by identity: a change to
    any of them (defaults re-assigned, a `__signature__` set) recomputes."""
    return (
        function.__code__,
        function.__defaults__,
        function.__kwdefaults__,
        getattr(function, "__signature__", None),
        getattr(function, "__wrapped__", None),
    )


def memoized_args_defaults(compute: Callable[[Any], ArgsDefaults]) -> Callable[[Any], ArgsDefaults]:
    """`compute` (Beam's `get_function_args_defaults`) remembered per plain
    function and per method of a plain function; other callables (builtins,
    partials, classes, callable objects) are computed every time. Callers get
    their own lists."""
    cache: "weakref.WeakKeyDictionary[types.FunctionType, dict]" = weakref.WeakKeyDictionary()

    def args_defaults(f: Any) -> ArgsDefaults:
        bound = isinstance(f, types.MethodType)
        function = f.__func__ if bound else f
        if type(function) is not types.FunctionType:
            return compute(f)
        entries = cache.setdefault(function, {})
        identity = _identity(function)
        entry = entries.get(bound)
        if entry is None or any(a is not b for a, b in zip(entry[0], identity)):
            entry = entries[bound] = (identity, compute(f))
        args, defaults = entry[1]
        return list(args), list(defaults)

    return args_defaults


def level_setter(log: logging.Logger) -> Callable[[bool], None]:
    """dill's `_trace(boolean)`: INFO when tracing, else WARN, as dill does,
    but without touching the logger when it already has that level."""

    def _trace(boolean: bool) -> None:
        level = logging.INFO if boolean else logging.WARN
        if log.level != level:
            log.setLevel(level)

    return _trace


def versions_checked() -> bool:
    """Whether the installed Beam and dill are the versions this was read against."""
    return apache_beam.__version__ == CHECKED_VERSIONS["apache_beam"] and dill.__version__ == CHECKED_VERSIONS["dill"]


def install() -> bool:
    """Applies both, once per process; False (nothing changed) for other versions."""
    global _installed
    if not _installed and versions_checked():
        core.get_function_args_defaults = memoized_args_defaults(BEAM_ARGS_DEFAULTS)
        # Beam calls it as `dill.dill._trace`: `dill.dill` is `dill._dill`.
        _dill._trace = level_setter(_dill.log)
        _installed = True
    return _installed
