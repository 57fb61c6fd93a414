"""The tutorial path as a reader takes it: JupyterLab in headless Chromium (Debian's
``chromium``, driven by Playwright's Python package), the project's kernel, every cell run
through the UI, no error, figures rendered as images.

``./run_notebooks.sh test`` installs what these tests need (``apt-get install chromium``
where it can, Playwright with the ``dev`` extra); ``./run_notebooks.sh browser`` runs only
them. Chromium's location: ``APSLIB_CHROMIUM`` (default ``/usr/bin/chromium``).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from apslib import notebooks as runner

pytestmark = [pytest.mark.browser, pytest.mark.notebook]

CHROMIUM = os.environ.get("APSLIB_CHROMIUM", "/usr/bin/chromium")
# What the machine needs: no sandbox as root, no GPU, and no background connections (this
# network refuses them, and Chromium retries them many at a time).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KERNEL_DISPLAY = "Python 3 (apslib)"
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook on show
RUN_SECONDS = 900  # the longest a notebook may take to run all its cells in the UI


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a free local port, its root a temporary folder, its settings,
    workspaces and runtime files there too (nothing of the user's is read or written)."""
    root = tmp_path_factory.mktemp("lab")
    state = tmp_path_factory.mktemp("lab-state")
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_PREFER_ENV_PATH="1", JUPYTER_RUNTIME_DIR=str(state / "runtime"))
    env["JUPYTER_CONFIG_DIR"] = str(state / "config")
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.workspaces_dir={state / 'workspaces'}",
        f"--LabApp.user_settings_dir={state / 'settings'}",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if os.geteuid() == 0:  # CI machines and containers run as root
        cmd.append("--allow-root")
    log = (state / "server.log").open("w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start: {(state / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield {"root": root, "base": base, "token": token}
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install Debian's chromium (apt-get install chromium; "
            "./run_notebooks.sh test does) or set APSLIB_CHROMIUM to a Chromium binary"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _prepare(nb: Path, dest: Path, parameters: dict) -> Path:
    """``nb`` with ``parameters`` injected (papermill, not executed) at ``dest``."""
    import papermill

    papermill.execute_notebook(
        str(nb), str(dest), parameters=parameters, prepare_only=True, kernel_name="python3"
    )
    return dest


def _run_in_the_ui(lab, browser, name: str, shots: Path) -> dict:
    """Open ``name`` (relative to the server root), run all cells from the Run menu, save;
    returns what the page showed."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        # A workspace of its own (``?reset``): no tab of an earlier test is restored beside it.
        page.goto(f"{lab['base']}/lab/tree/{name}?reset&token={lab['token']}", timeout=120_000)
        page.wait_for_selector(f"{PANEL} .jp-Cell", timeout=120_000)
        kernel = page.locator(f"{PANEL} .jp-Toolbar-kernelName")
        # The kernel is started (its name shown, its status idle) before anything runs.
        page.wait_for_function(
            "([sel, n]) => document.querySelector(sel)?.textContent?.trim() === n",
            arg=[f"{PANEL} .jp-Toolbar-kernelName", KERNEL_DISPLAY],
            timeout=120_000,
        )
        idle = f"{PANEL} .jp-Notebook-ExecutionIndicator[data-status='idle']"
        page.wait_for_selector(idle, timeout=120_000)
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        # Done: every code cell has an execution count, none is queued or running.
        page.wait_for_function(
            """sel => {
                const prompts = [...document.querySelectorAll(sel)];
                return prompts.length > 0 && prompts.every(p => /^\\[\\d+\\]:$/.test(p.textContent.trim()));
            }""",
            arg=f"{PANEL} .jp-CodeCell .jp-InputArea-prompt",
            timeout=RUN_SECONDS * 1000,
            polling=1000,
        )
        page.wait_for_selector(idle, timeout=60_000)
        page.keyboard.press("Control+s")
        page.wait_for_function("() => !document.querySelector('.lm-TabBar-tab.jp-mod-dirty')", timeout=60_000)
        images = page.evaluate(
            "s => [...document.querySelectorAll(s)].map(i => [i.complete, i.naturalWidth, i.naturalHeight])",
            f"{PANEL} .jp-OutputArea-output img",
        )
        stderr = f"{PANEL} .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
        shown = {
            "kernel": kernel.inner_text().strip(),
            "images": images,
            "error_outputs": page.locator(stderr).filter(has_text="Traceback").count(),
        }
        page.screenshot(path=str(shots / (Path(name).stem + ".png")), full_page=False)
        return shown
    finally:
        page.close()


def _saved_outputs(path: Path) -> tuple[list, int]:
    cells = json.loads(path.read_text())["cells"]
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    pngs = sum("image/png" in o.get("data", {}) for o in outputs)
    return errors, pngs


def test_notebook_01_runs_in_jupyterlab(lab, browser, tmp_path):
    """Notebook 01 as a reader opens it (its own parameters; only its output folders moved
    into a temporary folder)."""
    name = "01_theory_propositions.ipynb"
    out = tmp_path / "out"
    _prepare(
        runner.NOTEBOOK_DIR / name,
        lab["root"] / name,
        {"output_dir": str(out / "artifacts"), "figure_dir": str(out / "figures")},
    )
    shown = _run_in_the_ui(lab, browser, name, tmp_path)
    assert shown["kernel"] == KERNEL_DISPLAY
    assert shown["error_outputs"] == 0
    assert shown["images"] and all(c and w > 0 and h > 0 for c, w, h in shown["images"]), shown["images"]
    errors, pngs = _saved_outputs(lab["root"] / name)
    assert not errors, errors
    assert pngs == len(shown["images"]) and pngs >= 3
    assert sorted(p.name for p in (out / "figures").glob("*.png")), "the notebook saved no figure"


def test_a_smoke_profile_notebook_runs_in_jupyterlab(lab, browser, tmp_path):
    """Notebook 00 with the smoke profile's parameters (as ``--profile smoke`` passes them)."""
    name = "00_data.ipynb"
    nb = runner.NOTEBOOK_DIR / name
    params = runner.resolve_parameters(
        nb, runner.load_profile("smoke"), {}, tmp_path / "out", profile_name="smoke"
    )
    _prepare(nb, lab["root"] / name, params)
    shown = _run_in_the_ui(lab, browser, name, tmp_path)
    assert shown["kernel"] == KERNEL_DISPLAY
    assert shown["error_outputs"] == 0
    assert shown["images"] and all(c and w > 0 and h > 0 for c, w, h in shown["images"]), shown["images"]
    errors, pngs = _saved_outputs(lab["root"] / name)
    assert not errors and pngs == len(shown["images"])
