"""The in-process Beam fixes change how often work is done, never its result."""

import functools
import inspect
import logging

import taxi_pipeline  # noqa: F401  (selects Keras 2 before TensorFlow loads)
import apache_beam as beam
import pytest
from apache_beam.coders import VarIntCoder
from apache_beam.internal import pickler
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import core, userstate
from dill import _dill

from taxi_pipeline.runs import beam_overhead


class _Stateful(beam.DoFn):
    """Uses every kind of parameter Beam finds by inspecting signatures."""

    TOTAL = userstate.ReadModifyWriteStateSpec("total", VarIntCoder())

    def process(self, element, total=beam.DoFn.StateParam(TOTAL), window=beam.DoFn.WindowParam):
        key, value = element
        running = (total.read() or 0) + value
        total.write(running)
        yield key, running


def _decorated(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        return method(self, *args, **kwargs)

    return wrapper


class _Wrapped(beam.DoFn):
    @_decorated
    def process(self, element, timestamp=beam.DoFn.TimestampParam):
        yield element


class _CallableObject:
    def __call__(self, x, y=2):
        return x


def _with_defaults(a, b=1, *rest, c=3, **kw):
    return a


CALLABLES = {
    "stateful process": _Stateful().process,
    "wrapped process": _Wrapped().process,
    "Map's DoFn process": core.CallableWrapperDoFn(lambda x, k=1: x).process,
    "start_bundle": _Stateful().start_bundle,
    "plain function": _with_defaults,
    "lambda": lambda x, y=beam.DoFn.KeyParam: x,
    "classmethod": beam.DoFn.from_callable,
    "builtin": len,
    "partial": functools.partial(_with_defaults, 1),
    "callable object": _CallableObject(),
    "class": _CallableObject,
}


@pytest.fixture
def installed():
    assert beam_overhead.install()
    return core.get_function_args_defaults


def test_installed_for_the_locked_versions_once(installed):
    assert beam_overhead.versions_checked()
    assert installed is not beam_overhead.BEAM_ARGS_DEFAULTS
    assert beam_overhead.install()
    assert core.get_function_args_defaults is installed, "a second install wrapped it again"


@pytest.mark.parametrize("name", sorted(CALLABLES))
def test_same_arguments_as_beams_own_on_every_call(installed, name):
    f = CALLABLES[name]
    expected = beam_overhead.BEAM_ARGS_DEFAULTS(f)
    first = installed(f)
    first[0].append("mutated by a caller")
    assert installed(f) == expected
    assert installed(f) == expected


def test_a_changed_function_is_inspected_again(installed):
    def fn(a, b=1):
        return a

    assert installed(fn) == (["a", "b"], [1])
    fn.__defaults__ = (5,)
    assert installed(fn) == (["a", "b"], [5])
    fn.__signature__ = inspect.signature(lambda z: z)
    assert installed(fn) == (["z"], [])


def test_other_versions_are_left_untouched(monkeypatch):
    monkeypatch.setattr(beam_overhead, "_installed", False)
    monkeypatch.setattr(beam, "__version__", "2.61.0")
    monkeypatch.setattr(core, "get_function_args_defaults", beam_overhead.BEAM_ARGS_DEFAULTS)
    original_trace = _dill._trace
    assert not beam_overhead.install()
    assert core.get_function_args_defaults is beam_overhead.BEAM_ARGS_DEFAULTS
    assert _dill._trace is original_trace


def test_dill_levels_kept_without_clearing_every_loggers_cache(installed, monkeypatch):
    clears = []
    manager = logging.Logger.manager
    original_clear = manager._clear_cache
    monkeypatch.setattr(manager, "_clear_cache", lambda: (clears.append(1), original_clear()))
    _dill._trace(True)
    assert _dill.log.level == logging.INFO
    _dill._trace(False)
    assert _dill.log.level == logging.WARN
    assert len(clears) == 2, "each level change must still reach the loggers"
    for _ in range(100):
        assert pickler.loads(pickler.dumps(_with_defaults))(7) == 7
    assert len(clears) == 2
    assert _dill.log.level == logging.WARN


def test_stateful_and_windowed_dofns_still_run(installed):
    with beam.Pipeline() as p:
        totals = (
            p
            | beam.Create([("a", 1), ("a", 2), ("b", 5), ("a", 3)])
            | beam.ParDo(_Stateful())
            | beam.combiners.Top.LargestPerKey(1)
            | beam.MapTuple(lambda key, best: (key, best[0]))
        )
        wrapped = p | "More" >> beam.Create([1, 2]) | beam.ParDo(_Wrapped())
        assert_that(totals, equal_to([("a", 6), ("b", 5)]))
        assert_that(wrapped, equal_to([1, 2]), label="wrapped")
