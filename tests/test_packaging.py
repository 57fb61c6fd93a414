"""The project's own files: dependency lists agree, notebooks are clean, CI calls the tests."""

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from apslib import notebooks as runner

REPO = Path(__file__).resolve().parent.parent


def _norm(req: str) -> str:
    req = req.replace(" ", "").replace('"', "'")
    name, spec = re.match(r"([A-Za-z0-9_.\-]+)(.*)", req).groups()
    return re.sub(r"[-_.]+", "-", name).lower() + spec


def test_environment_yml_installs_what_pyproject_declares():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {_norm(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert "conda-forge" in env["channels"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert pip[-1] == "-e .", "the pip section must end with the project itself"
    assert {_norm(r) for r in pip[:-1]} == declared


def test_runtime_dependencies_cover_what_users_expect():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {re.match(r"[A-Za-z0-9_.\-]+", r).group().lower() for r in project["dependencies"]}
    for needed in [
        "torch",
        "fastmri",
        "papermill",
        "jupyterlab",
        "ipykernel",
        "matplotlib",
        "seaborn",
        "h5py",
        "scikit-image",
        "requests",
        "numpy",
        "tqdm",
    ]:
        assert needed in names, needed
    torch_req = next(r for r in project["dependencies"] if r.startswith("torch"))
    assert "==" not in torch_req, "a pinned torch breaks fastmri's torchvision"


# import name -> distribution name, where they differ
DIST = {
    "skimage": "scikit-image",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "jupyter_client": "jupyter-client",
    "IPython": "ipython",
}


def _imports_by_module() -> dict[str, set[str]]:
    """Top-level names each module of apslib (subpackages included) imports, lazy imports
    inside functions too."""
    out = {}
    for path in sorted((REPO / "apslib").rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
        out[str(path.relative_to(REPO))] = names
    return out


def test_the_scan_sees_the_subpackages():
    modules = _imports_by_module()
    assert any(m.startswith("apslib/data/") for m in modules)
    assert any(m.startswith("apslib/evaluate/") for m in modules)
    assert any(m.startswith("apslib/plots/") for m in modules)


def test_figures_are_drawn_only_in_apslib_plots():
    drawing = {"matplotlib", "seaborn"}
    outside = sorted(
        m
        for m, names in _imports_by_module().items()
        if names & drawing and not m.startswith("apslib/plots/")
    )
    assert not outside, f"{outside} import matplotlib/seaborn: figures belong in apslib/plots"


def test_library_modules_stay_readable():
    long = {
        str(p.relative_to(REPO)): n
        for p in (REPO / "apslib").rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 500
    }
    assert not long, f"modules over 500 lines (split them by concern): {long}"


def test_every_third_party_import_of_the_library_is_declared():
    import sys

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {
        re.match(r"[A-Za-z0-9_.\-]+", r).group().lower().replace("_", "-") for r in project["dependencies"]
    }
    imported = set().union(*_imports_by_module().values()) - {"apslib", "__future__"}
    third_party = {name for name in imported if name not in sys.stdlib_module_names}
    assert third_party, "the scan found no imports"
    missing = sorted(n for n in third_party if DIST.get(n, n).lower().replace("_", "-") not in declared)
    assert not missing, f"apslib imports {missing} without declaring them in pyproject.toml"


def test_readme_leads_with_the_two_commands_and_ci_runs_the_tests():
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```")[1]
    assert "./run_notebooks.sh" in first_block and "./run_notebooks.sh test" in first_block
    ci = (REPO / ".ci" / "run").read_text()
    assert "run_notebooks.sh test" in ci
    assert "set -e" in ci


NOTEBOOKS = runner.discover()


def test_there_are_notebooks():
    assert any(nb.name.startswith("01_") for nb in NOTEBOOKS)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean_and_parameterised(nb):
    data = json.loads(nb.read_text())
    cells = data["cells"]
    assert cells[0]["cell_type"] == "markdown", "cell 1 says what the notebook shows"
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    for c in cells:
        if c["cell_type"] == "code":
            assert not c.get("outputs") and not c.get("execution_count"), "commit without outputs"
            src = "".join(c["source"])
            assert "sys.path" not in src, "import the installed package, no sys.path hacks"
            assert "matplotlib.use(" not in src and "MPLBACKEND" not in src


@pytest.mark.parametrize("profile", runner.profiles())
def test_profiles_only_set_declared_parameters(profile, tmp_path):
    prof = runner.load_profile(profile)
    for nb in NOTEBOOKS:
        declared = runner.declared_parameters(nb)
        params = runner.resolve_parameters(nb, prof, {}, tmp_path, declared)
        for name, value in params.items():
            if name.endswith(runner.PATH_SUFFIXES) and isinstance(value, str):
                assert Path(value).is_absolute(), (nb.name, name, value)
