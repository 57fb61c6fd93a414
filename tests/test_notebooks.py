"""Every notebook, in order, through papermill at the smoke profile (as run_notebooks.sh does)."""

import json
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
