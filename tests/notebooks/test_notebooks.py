"""The notebooks execute top to bottom headless against small pipeline runs.

Each is run with papermill (parameters injected into its `parameters` cell),
then its saved outputs are checked: TFMA widget views with their state, and
the offline companions (HTML tables, PNG charts) that render without a kernel.
"""

import os

import nbformat
import papermill
import pytest
import tensorflow_model_analysis as tfma

from taxi_pipeline.records import tfma_results
from taxi_pipeline.settings import REPO_ROOT

NOTEBOOKS = os.path.join(REPO_ROOT, "notebooks")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def execute(name, tmp_path, **parameters):
    """Runs notebooks/<name> like Jupyter would (cwd notebooks/); returns the executed notebook."""
    output = tmp_path / name
    papermill.execute_notebook(
        os.path.join(NOTEBOOKS, name), str(output), parameters=parameters,
        cwd=NOTEBOOKS, kernel_name="python3", progress_bar=False,
    )
    return nbformat.read(str(output), as_version=4)


def outputs_of(notebook):
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]


def html_of(notebook) -> str:
    return "\n".join(o["data"]["text/html"] for o in outputs_of(notebook) if "text/html" in o.get("data", {}))


def text_of(notebook) -> str:
    return "\n".join(o.get("text", "") for o in outputs_of(notebook) if o.output_type == "stream")


def widget_states(notebook, model_name):
    """The saved state of every widget of `model_name` (e.g. SlicingMetricsModel)."""
    state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    return [w["state"] for w in state.values() if w["model_name"] == model_name]


def assert_no_errors(notebook):
    errors = [o for o in outputs_of(notebook) if o.output_type == "error"]
    assert not errors, errors
    assert "Traceback" not in text_of(notebook)


@pytest.fixture(scope="module")
def taxi_analysis(taxi_rerun, tmp_path_factory):
    output_dir, first, second = taxi_rerun
    notebook = execute("model_analysis.ipynb", tmp_path_factory.mktemp("nb"), OUTPUT_DIR=output_dir, MODEL="taxi")
    return notebook, first, second


def test_model_analysis_shows_tfma_views_with_the_runs_slices(taxi_analysis):
    notebook, _, second = taxi_analysis
    assert_no_errors(notebook)
    views = [o for o in outputs_of(notebook) if WIDGET_VIEW in o.get("data", {})]
    # by trip_start_hour, by payment_type, overall with diffs, and the time series
    assert len(views) == 4
    expected = tfma_results.metric_values(tfma.load_eval_result(second.evaluation_uri), ["auc"])
    by_hour = {f"trip_start_hour:{key[0][1]}": values["auc"]
               for key, values in expected if [k for k, _ in key] == ["trip_start_hour"]}
    shown = {}
    for state in widget_states(notebook, "SlicingMetricsModel"):
        for row in state["data"]:
            if row["slice"].startswith("trip_start_hour:"):
                shown[row["slice"]] = row["metrics"][""][""]["auc"]["doubleValue"]
    assert shown == pytest.approx(by_hour) and len(shown) >= 20
    overall = [s for s in widget_states(notebook, "SlicingMetricsModel") if s["data"][0]["slice"] == "Overall"]
    assert "auc_diff" in overall[0]["data"][0]["metrics"][""][""], "the baseline comparison is in the view"
    (series,) = widget_states(notebook, "TimeSeriesModel")
    assert len(series["data"]) == 2, "both evaluations are on the time series"


def test_model_analysis_offline_companions(taxi_analysis):
    notebook, first, second = taxi_analysis
    html = html_of(notebook)
    pngs = [o for o in outputs_of(notebook) if "image/png" in o.get("data", {})]
    assert len(pngs) == 3, "a chart per slicing feature and one across runs"
    assert "trip_start_hour = 23" in html and "payment_type = Cash" in html
    assert "baseline" in html and "difference" in html
    assert "value &gt;= 0.75" in html and "change vs baseline &gt;= -0.01" in html and "passed" in html
    assert first.run_id in html and second.run_id in html, "the history lists both runs"
    for summary in (first, second):  # the registry table lists each pushed version
        assert f"<th>{os.path.basename(summary.pushed_model)}</th>" in html
    assert f"Run {second.run_id}: BLESSED" in "".join(
        o["data"].get("text/markdown", "") for o in outputs_of(notebook) if "data" in o
    )


def test_model_analysis_for_ner_slices_by_sentence_length(ner_run, tmp_path):
    output_dir, summary = ner_run
    notebook = execute("model_analysis.ipynb", tmp_path, OUTPUT_DIR=output_dir, MODEL="ner")
    assert_no_errors(notebook)
    expected = tfma_results.metric_values(tfma.load_eval_result(summary.evaluation_uri), ["entity_f1"])
    buckets = {f"length_bucket:{key[0][1]}": v["entity_f1"] for key, v in expected if key}
    shown = {
        row["slice"]: row["metrics"][""][""]["entity_f1"]["doubleValue"]
        for state in widget_states(notebook, "SlicingMetricsModel")
        for row in state["data"]
        if row["slice"].startswith("length_bucket:")
    }
    assert shown == pytest.approx(buckets) and shown
    markdown = "".join(o["data"].get("text/markdown", "") for o in outputs_of(notebook) if "data" in o)
    assert "No baseline in this evaluation" in markdown, "one run: nothing to compare with"
    assert "entity_f1" in html_of(notebook)


def test_missing_output_is_one_clear_message(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError):
        execute("model_analysis.ipynb", tmp_path, OUTPUT_DIR=str(tmp_path / "nothing"), MODEL="taxi")
    notebook = nbformat.read(str(tmp_path / "model_analysis.ipynb"), as_version=4)
    (error,) = [o for o in outputs_of(notebook) if o.output_type == "error"]
    assert error.ename == "OutputNotFound"
    assert error.traceback == [
        f"OutputNotFound: no pipeline output in {tmp_path / 'nothing'} (no metadata.db): run "
        f"`python local_runner.py --pipeline taxi --output_dir {tmp_path / 'nothing'}` first"
    ]
    first_code_cell = next(i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and c.outputs)
    assert error in notebook.cells[first_code_cell].outputs, "the set-up cell says it, before any view"


def test_data_validation_for_both_models(taxi_run, ner_run, tmp_path):
    taxi_dir, _ = taxi_run
    notebook = execute("data_validation.ipynb", tmp_path, OUTPUT_DIR=taxi_dir, MODELS=["taxi", "ner"])
    assert_no_errors(notebook)
    # This folder holds the taxi runs only: the NER part says so and the rest goes on.
    assert "skipped: " in text_of(notebook) and "no run of the ner pipeline" in text_of(notebook)
    html = html_of(notebook)
    assert "facets-overview" in html, "TFDV's Facets view (needs internet in the browser)"
    assert "trip_start_hour" in html and ">train<" in html and ">eval<" in html
    assert "No anomalies found." in html
    assert "'payment_type'" in html, "the schema table"
    assert sum("image/png" in o.get("data", {}) for o in outputs_of(notebook)) == 1

    ner_dir, _ = ner_run
    notebook = execute("data_validation.ipynb", tmp_path, OUTPUT_DIR=ner_dir, MODELS=["ner"])
    assert_no_errors(notebook)
    assert "tokens" in html_of(notebook) and "length_bucket" in html_of(notebook)


def test_committed_notebooks_carry_no_outputs():
    for name in ("model_analysis.ipynb", "data_validation.ipynb"):
        notebook = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
        nbformat.validate(notebook)
        assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code"), name
        tags = [c.metadata.get("tags", []) for c in notebook.cells]
        assert ["parameters"] in tags, f"{name}: papermill needs a parameters cell"
        assert notebook.metadata.kernelspec.name == "python3"
