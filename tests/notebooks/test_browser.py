"""In a real browser: the project's Jupyter serves the model-analysis notebook,
headless Chromium runs it, and the page's DOM shows TFMA's widget (loaded by its
nbextension, holding the run's slices and metric values) and the offline companions.

Chromium and ChromeDriver are Debian's packages (`make browser`, part of
`make test`). The screenshot lands in outputs/test-artifacts/.
"""

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import tensorflow_model_analysis as tfma

from taxi_pipeline.records import tfma_results
from taxi_pipeline.settings import DEFAULT_OUTPUT_DIR, REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
NOTEBOOK = os.path.join(REPO_ROOT, "notebooks", "model_analysis.ipynb")
SCREENSHOT = os.path.join(DEFAULT_OUTPUT_DIR, "test-artifacts", "model_analysis.png")
TOKEN = "browser-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(condition, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def jupyter(taxi_rerun, tmp_path_factory):
    """The project's classic Jupyter on a free loopback port, kernels pointed at the test run."""
    output_dir, _, _ = taxi_rerun
    port = _free_port()
    runtime = tmp_path_factory.mktemp("jupyter_runtime")
    env = dict(os.environ, PIPELINE_OUTPUT_DIR=output_dir, JUPYTER_RUNTIME_DIR=str(runtime),
               TF_USE_LEGACY_KERAS="1")
    server = subprocess.Popen(
        [sys.executable, "-m", "notebook", "--no-browser", "--allow-root", "--ip=127.0.0.1",
         f"--port={port}", f"--NotebookApp.token={TOKEN}", "--NotebookApp.show_banner=False",
         f"--notebook-dir={REPO_ROOT}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            return urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2).status == 200
        except OSError:
            return False

    try:
        _wait_for(up, 60, "Jupyter to start")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    for program in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(program):
            pytest.fail(f"{program} is missing: `make browser` installs Debian's chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--window-size=1400,2400",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium_profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def page(jupyter, browser):
    """The notebook opened and run top to bottom in the browser (never saved)."""
    with open(NOTEBOOK, "rb") as f:
        committed = hashlib.sha256(f.read()).hexdigest()
    browser.get(f"{jupyter}/notebooks/notebooks/model_analysis.ipynb?token={TOKEN}")
    _wait_for(lambda: browser.execute_script(
        "return !!(window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel"
        " && Jupyter.notebook.kernel.is_connected())"), 120, "the kernel")
    browser.execute_script("Jupyter.notebook.set_autosave_interval(0); Jupyter.notebook.execute_all_cells();")
    _wait_for(lambda: browser.execute_script(
        "const cells = Jupyter.notebook.get_cells().filter(c => c.cell_type === 'code');"
        "return !Jupyter.notebook.kernel_busy &&"
        " cells.every(c => typeof c.input_prompt_number === 'number');"), 300, "the notebook to run")
    _wait_for(lambda: browser.execute_script(
        "return document.querySelectorAll('tfma-nb-time-series').length"), 30, "the last widget")
    # The whole notebook in one picture: grow the window to the page's height.
    height = browser.execute_script("return document.querySelector('#notebook').scrollHeight")
    browser.set_window_size(1400, min(height + 200, 20000))
    os.makedirs(os.path.dirname(SCREENSHOT), exist_ok=True)
    browser.save_screenshot(SCREENSHOT)
    yield browser
    with open(NOTEBOOK, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == committed, "the browser run must not save the notebook"


# Depth-first search through shadow roots: TFMA's views are nested Polymer elements.
FIND_DEEP = """
function findDeep(root, tag, found = []) {
  for (const child of root.children || []) {
    if (child.tagName.toLowerCase() === tag) found.push(child);
    if (child.shadowRoot) findDeep(child.shadowRoot, tag, found);
    findDeep(child, tag, found);
  }
  return found;
}
"""


def test_tfma_extension_renders_the_runs_slices(page, taxi_rerun):
    _, _, second = taxi_rerun
    assert page.execute_script(
        "return requirejs.defined('nbextensions/tensorflow_model_analysis/extension')"
        " && requirejs.defined('nbextensions/tfma_preload/main')"
        " && customElements.get('tfma-nb-slicing-metrics') !== undefined")
    widget_errors = page.execute_script(
        "return Array.from(document.querySelectorAll('.output_area')).map(e => e.innerText)"
        ".filter(t => t.includes('Error displaying widget') || t.includes('Traceback'))")
    assert widget_errors == []
    views = page.execute_script(
        "return Array.from(document.querySelectorAll('tfma-nb-slicing-metrics')).map(e => e.data)")
    assert len(views) == 3, "by trip_start_hour, by payment_type, overall"
    expected = tfma_results.metric_values(tfma.load_eval_result(second.evaluation_uri), ["auc"])
    by_hour = {f"trip_start_hour:{key[0][1]}": values["auc"]
               for key, values in expected if [k for k, _ in key] == ["trip_start_hour"]}
    shown = {row["slice"]: row["metrics"][""][""]["auc"]["doubleValue"] for row in views[0]}
    assert shown == pytest.approx(by_hour)
    # The Polymer views rendered from that data: the metric picker lists the run's metrics.
    items = page.execute_script(FIND_DEEP + """
        const view = document.querySelector('tfma-nb-slicing-metrics');
        return findDeep(view.shadowRoot, 'tfma-slice-overview')
          .flatMap(o => findDeep(o.shadowRoot, 'paper-item')).map(i => i.textContent.trim());""")
    assert {"auc", "binary_accuracy", "example_count"} <= set(items)
    assert page.execute_script(FIND_DEEP + """
        return findDeep(document.querySelector('tfma-nb-slicing-metrics').shadowRoot,
                        'tfma-metrics-table').length""") == 1


def test_offline_companions_are_drawn(page, taxi_rerun):
    _, first, second = taxi_rerun
    tables = page.execute_script(
        "return Array.from(document.querySelectorAll('.output_html table.dataframe')).map(t => t.innerText)")
    assert any("trip_start_hour = 23" in t and "auc" in t for t in tables)
    assert any("baseline" in t and "difference" in t for t in tables)
    assert any(first.run_id in t and second.run_id in t for t in tables)
    charts = page.execute_script(
        "return Array.from(document.querySelectorAll('.output_png img'))"
        ".map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
    assert len(charts) == 3 and all(done and w > 200 and h > 100 for done, w, h in charts)
    assert os.path.getsize(SCREENSHOT) > 10_000
