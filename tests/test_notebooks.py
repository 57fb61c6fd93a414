"""Every notebook, in order, through papermill at the smoke profile (as run_notebooks.sh does)."""

import json
import re
import time

import pytest

from apslib import notebooks as runner

NOTEBOOKS = runner.discover()


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, pytestconfig):
    """Run the whole sequence once; later notebooks read what earlier ones wrote."""
    out = tmp_path_factory.mktemp("smoke")
    results = {}
    pytestconfig.notebook_times = times = []
    for nb in NOTEBOOKS:
        start = time.perf_counter()
        try:
            runner.run("smoke", only=[nb.name[:2]], out=out)
            results[nb.name] = None
        except runner.RunnerError as err:
            results[nb.name] = str(err)
        times.append((nb.name, time.perf_counter() - start, results[nb.name] is None))
    summary = (
        json.loads((out / "run_summary.json").read_text()) if (out / "run_summary.json").exists() else {}
    )
    return out, results, summary


@pytest.mark.notebook
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_at_smoke_profile(smoke_run, nb):
    out, results, _ = smoke_run
    assert results[nb.name] is None, results[nb.name]
    assert (out / nb.name).exists()
    executed = json.loads((out / nb.name).read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


@pytest.mark.notebook
def test_notebook_01_records_its_checks(smoke_run):
    out, results, _ = smoke_run
    if results.get("01_theory_propositions.ipynb") is not None:
        pytest.fail("notebook 01 failed; see its own test")
    checks = json.loads((out / "artifacts" / "01_checks.json").read_text())
    assert checks


@pytest.mark.notebook
def test_notebook_08_records_the_alias_free_targets(smoke_run):
    out, results, _ = smoke_run
    if results.get("08_alias_free.ipynb") is not None:
        pytest.fail("notebook 08 failed; see its own test")
    record = json.loads((out / "artifacts" / "08_alias_free.json").read_text())
    assert set(record["targets"]) == {"AF", "AF-ReLU"}
    af = record["targets"]["AF"]
    assert af["eq NMSE at 0.5 px"] < 1e-9 and af["max eq NMSE, integer offsets"] < 1e-9
    assert set(record["clamp_activity"]) == set(record["models"])


def _runner(tmp_path, *args):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "apslib.notebooks", "--profile", "smoke", "--out", str(tmp_path), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.mark.notebook
def test_runner_output_is_one_line_per_notebook(tmp_path):
    """No kernel transport warning or kernel log in the terminal: one line per notebook
    with its time, then the total."""
    proc = _runner(tmp_path, "--only", "01")
    assert proc.returncode == 0, proc.stderr
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(lines) == 2, lines
    assert re.fullmatch(r"\[smoke\] 01_theory_propositions\.ipynb \.\.\. ok in \d+\.\d s", lines[0]), lines
    assert lines[1].startswith("[smoke] 1 notebook(s) in "), lines


@pytest.mark.notebook
def test_runner_failure_shows_the_failing_cell_and_error_once(tmp_path):
    proc = _runner(tmp_path, "--only", "01", "-p", "depth", "9")
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    assert "IPKernelApp" not in out and "Traceback" not in out, out
    assert out.count("check_size((size, size)") == 1, out  # the failing cell's source, once
    assert out.count("ValueError: channels needs depth + 1 = 10 entries") == 1, out
    assert f"executed copy: {tmp_path / '01_theory_propositions.ipynb'}" in out
