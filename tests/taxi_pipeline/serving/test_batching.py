"""Server-side batching: concurrent callers share calls and get their own rows."""

import threading
import time

import numpy as np
import pytest

from taxi_pipeline.serving.batching import Batcher


def _concurrently(batcher, call, inputs_list):
    results, errors = [None] * len(inputs_list), [None] * len(inputs_list)
    barrier = threading.Barrier(len(inputs_list))

    def one(i):
        barrier.wait()
        try:
            results[i] = batcher.run("model", call, inputs_list[i])
        except Exception as e:  # collected for the assertions
            errors[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(inputs_list))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def test_concurrent_requests_are_merged_and_split_back():
    calls = []

    def call(inputs):
        calls.append(len(inputs["x"]))
        time.sleep(0.005)  # a model call takes time: the other callers arrive meanwhile
        return {"double": inputs["x"] * 2, "sum": inputs["x"].sum(axis=1)}

    batcher = Batcher(max_batch_size=64, batch_timeout_micros=200_000)
    inputs = [{"x": np.full((1, 3), i, dtype=float)} for i in range(16)]
    results, errors = _concurrently(batcher, call, inputs)
    assert errors == [None] * 16
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["double"], np.full((1, 3), 2 * i))
        np.testing.assert_array_equal(result["sum"], [3 * i])
    assert sum(calls) == 16 and len(calls) < 16, calls


def test_a_bad_request_fails_alone():
    def call(inputs):
        if (inputs["x"] < 0).any():
            raise ValueError("negative input")
        return {"y": inputs["x"] + 1}

    batcher = Batcher(max_batch_size=64, batch_timeout_micros=200_000)
    inputs = [{"x": np.array([[i]])} for i in (1, -1, 2, 3)]
    results, errors = _concurrently(batcher, call, inputs)
    assert isinstance(errors[1], ValueError) and results[1] is None
    assert [r["y"][0][0] for i, r in enumerate(results) if i != 1] == [2, 3, 4]


def test_outputs_not_one_row_per_input_row_are_answered_alone():
    calls = []

    def call(inputs):
        calls.append(len(inputs["x"]))
        time.sleep(0.005)
        return {"total": inputs["x"].sum()}  # one number for the whole batch

    batcher = Batcher(max_batch_size=64, batch_timeout_micros=200_000)
    inputs = [{"x": np.array([[i, 1.0]])} for i in range(8)]
    results, errors = _concurrently(batcher, call, inputs)
    assert errors == [None] * 8
    assert [float(r["total"]) for r in results] == [i + 1.0 for i in range(8)]
    assert any(n > 1 for n in calls), "a merged call was tried"


def test_different_trailing_shapes_are_never_merged():
    seen = []

    def call(inputs):
        seen.append(inputs["x"].shape)
        return {"y": inputs["x"]}

    batcher = Batcher(max_batch_size=64, batch_timeout_micros=100_000)
    inputs = [{"x": np.zeros((1, 2))}, {"x": np.zeros((1, 5))}, {"x": np.zeros((1, 2))}]
    results, errors = _concurrently(batcher, call, inputs)
    assert errors == [None] * 3
    assert [r["y"].shape for r in results] == [(1, 2), (1, 5), (1, 2)]
    assert all(shape[1] in (2, 5) for shape in seen)


@pytest.mark.parametrize("rows", [64, 100])
def test_full_batches_run_directly(rows):
    batcher = Batcher(max_batch_size=64, batch_timeout_micros=10_000_000)
    out = batcher.run("m", lambda inputs: {"y": inputs["x"]}, {"x": np.zeros((rows, 1))})
    assert out["y"].shape == (rows, 1)


def test_a_lone_request_runs_at_once_in_its_own_thread():
    threads = []

    def call(inputs):
        threads.append(threading.get_ident())
        return {"y": inputs["x"] + 1}

    batcher = Batcher(max_batch_size=16, batch_timeout_micros=1_000_000)
    assert batcher.run("model", call, {"x": np.ones((1, 2))})["y"].tolist() == [[2, 2]]
    assert threads == [threading.get_ident()], "no hand-off to the batching thread"


def test_requests_arriving_during_a_lone_call_do_not_wait_for_it():
    release = threading.Event()

    def call(inputs):
        if inputs["x"][0, 0] == 0:
            release.wait(10)
        return {"y": inputs["x"] * 10}

    batcher = Batcher(max_batch_size=16, batch_timeout_micros=1_000_000)
    slow = threading.Thread(target=batcher.run, args=("model", call, {"x": np.zeros((1, 1))}))
    slow.start()
    time.sleep(0.05)
    started = time.monotonic()
    assert batcher.run("model", call, {"x": np.ones((1, 1))})["y"].tolist() == [[10]]
    assert time.monotonic() - started < 0.5, "it ran beside the slow call, not after it or its timeout"
    release.set()
    slow.join()
