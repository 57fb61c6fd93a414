"""The project's own files: one dependency list (core, extras, environment.yml), imports
that match it, the type checker and CI, clean notebooks."""

import ast
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

import apslib
from apslib import notebook_params
from apslib import notebooks as runner

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]

# import name -> distribution name, where they differ
DIST = {
    "skimage": "scikit-image",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "jupyter_client": "jupyter-client",
    "IPython": "ipython",
}
# declared, never imported: what each is for
TOOLS = {
    "jupyterlab": "opens the notebooks",
    "ipykernel": "the notebooks' kernel (run_notebooks.sh registers it)",
    "requests": "fastmri.data imports it without declaring it",
    "ruff": "lint",
    "mypy": "type checking",
    "pre-commit": "the git hooks",
}


def _environment_tool():
    spec = importlib.util.spec_from_file_location("environment_tool", REPO / "tools" / "environment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dist(name: str) -> str:
    """Normalised distribution name of a requirement or of an import name."""
    name = DIST.get(name, name)
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.\-]+", name).group()).lower()


def _dists(requirements) -> set[str]:
    return {_dist(r) for r in requirements if not r.startswith(PROJECT["name"] + "[")}


def _extra(name: str) -> set[str]:
    return _dists(_environment_tool().requirements(PROJECT, [name])) - _dists(PROJECT["dependencies"])


class _Imports(ast.NodeVisitor):
    """Top-level names imported by a module: at import time (``runtime``) and inside
    functions (``lazy``)."""

    def __init__(self):
        self.runtime, self.lazy = set(), set()
        self._depth = 0

    def _add(self, name):
        (self.lazy if self._depth else self.runtime).add(name.split(".")[0])

    def visit_Import(self, node):
        for alias in node.names:
            self._add(alias.name)

    def visit_ImportFrom(self, node):
        if node.level == 0:
            self._add(node.module)

    def visit_FunctionDef(self, node):
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node):  # `if TYPE_CHECKING:` imports never run
        if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
            self.generic_visit(node)


def _source(path: Path) -> str:
    if path.suffix != ".ipynb":
        return path.read_text()
    cells = json.loads(path.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))


def _third_party(names: set[str]) -> set[str]:
    local = {"apslib", "__future__"} | {
        p.stem for d in ("tests", "benchmarks") for p in (REPO / d).glob("*.py")
    }
    return {n for n in names if n not in sys.stdlib_module_names and n not in local}


def _scan(*patterns: str) -> dict[str, _Imports]:
    out = {}
    for pattern in patterns:
        for path in sorted(REPO.glob(pattern)):
            found = _Imports()
            found.visit(ast.parse(_source(path)))
            out[str(path.relative_to(REPO))] = found
    return out


def _imports_by_module() -> dict[str, set[str]]:
    """Top-level names each module of apslib (subpackages included) imports, lazy imports
    inside functions too."""
    return {m: i.runtime | i.lazy for m, i in _scan("apslib/**/*.py").items()}


def _core_files() -> set[str]:
    """The core: the modules the type checker checks."""
    out = set()
    for entry in PYPROJECT["tool"]["mypy"]["files"]:
        path = REPO / entry
        paths = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        out |= {str(p.relative_to(REPO)) for p in paths}
    return out


def test_the_version_is_one():
    assert PROJECT["version"] == apslib.__version__
    changelog = (REPO / "CHANGELOG.md").read_text()
    first = re.search(r"^## \[?(\d+\.\d+\.\d+)", changelog, re.M)
    assert first and first.group(1) == apslib.__version__, "CHANGELOG.md opens with the current version"


def test_the_core_needs_torch_and_numpy_only():
    core = _dists(PROJECT["dependencies"])
    assert core == {"torch", "numpy"}, f"the core depends on {sorted(core)}: move the rest to an extra"
    torch_req = next(r for r in PROJECT["dependencies"] if r.startswith("torch"))
    assert "==" not in torch_req, "a pinned torch breaks fastmri's torchvision"


def test_extras_hold_the_rest():
    extras = PROJECT["optional-dependencies"]
    assert set(extras) == {"data", "notebooks", "dev", "all"}
    assert {"fastmri", "h5py", "scikit-image"} <= _extra("data")
    assert {"papermill", "jupyterlab", "ipykernel", "matplotlib", "seaborn"} <= _extra("notebooks")
    assert _extra("data") <= _extra("notebooks"), "the notebooks run the harness"
    assert {"pytest", "hypothesis", "ruff", "mypy", "pre-commit"} <= _extra("dev")
    every = set().union(*(_extra(e) for e in extras if e != "all"))
    assert _extra("all") == every
    assert "[all]" in (REPO / "run_notebooks.sh").read_text(), "run_notebooks.sh installs every extra"


def test_environment_yml_is_generated_from_pyproject():
    tool = _environment_tool()
    text = (REPO / "environment.yml").read_text()
    assert text == tool.render((REPO / "pyproject.toml").read_text()), (
        "environment.yml is out of date: run python tools/environment.py --write"
    )
    env = yaml.safe_load(text)
    assert "conda-forge" in env["channels"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert pip[-1] == "-e .", "the pip section must end with the project itself"
    declared = _dists(PROJECT["dependencies"]).union(*(_extra(e) for e in PROJECT["optional-dependencies"]))
    assert _dists(pip[:-1]) == declared


def test_the_scan_sees_the_subpackages():
    modules = _imports_by_module()
    assert any(m.startswith("apslib/data/") for m in modules)
    assert any(m.startswith("apslib/evaluate/") for m in modules)
    assert any(m.startswith("apslib/plots/") for m in modules)


def test_the_core_imports_only_its_dependencies():
    core, data = _dists(PROJECT["dependencies"]), _extra("data")
    scanned = _scan("apslib/**/*.py")
    for module in sorted(_core_files()):
        found = scanned[module]
        runtime = {_dist(n) for n in _third_party(found.runtime)}
        lazy = {_dist(n) for n in _third_party(found.lazy)}
        assert runtime <= core, f"{module} imports {sorted(runtime - core)} when apslib is imported"
        assert lazy <= core | data, f"{module} imports {sorted(lazy - core - data)} (not even in [data])"


def test_the_harness_imports_only_its_extras():
    core, data, notebooks = _dists(PROJECT["dependencies"]), _extra("data"), _extra("notebooks")
    for module, names in _imports_by_module().items():
        if module in _core_files():
            continue
        figures = module.startswith("apslib/plots/") or module == "apslib/notebooks.py"
        allowed = core | (notebooks if figures else data)
        used = {_dist(n) for n in _third_party(names)}
        assert used <= allowed, f"{module} imports {sorted(used - allowed)} outside its extra"


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


SCANNED = ("apslib/**/*.py", "tests/*.py", "benchmarks/*.py", "tools/*.py", "notebooks/*.ipynb")


def test_every_third_party_import_is_declared():
    declared = _dists(PROJECT["dependencies"]).union(*(_extra(e) for e in PROJECT["optional-dependencies"]))
    missing = {}
    for module, found in _scan(*SCANNED).items():
        if undeclared := sorted(
            n for n in _third_party(found.runtime | found.lazy) if _dist(n) not in declared
        ):
            missing[module] = undeclared
    assert not missing, f"imported without being declared in pyproject.toml: {missing}"


def test_every_declared_dependency_is_used():
    imported = {_dist(n) for found in _scan(*SCANNED).values() for n in found.runtime | found.lazy}
    declared = _dists(PROJECT["dependencies"]).union(*(_extra(e) for e in PROJECT["optional-dependencies"]))
    unused = sorted(declared - imported - set(TOOLS))
    assert not unused, f"declared in pyproject.toml but imported nowhere: {unused}"
    assert not set(TOOLS) & imported, "a package in TOOLS is imported: drop it from TOOLS"


def test_the_type_checker_covers_what_import_apslib_loads():
    core = _core_files()
    assert all((REPO / m).is_file() for m in core)
    code = (
        "import sys, apslib; "
        "print('\\n'.join(m.__file__ for n, m in sys.modules.items() if n.split('.')[0] == 'apslib'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    loaded = {str(Path(f).resolve().relative_to(REPO)) for f in out.stdout.split()}
    assert loaded <= core, f"import apslib loads modules mypy does not check: {sorted(loaded - core)}"


def test_ci_lints_type_checks_then_tests():
    ci = (REPO / ".ci" / "run").read_text()
    assert "set -e" in ci
    steps = [m.group(1) for m in re.finditer(r"^\./run_notebooks\.sh (\w+)", ci, re.M)]
    assert steps == ["lint", "typecheck", "test"]
    script = (REPO / "run_notebooks.sh").read_text()
    assert 'pytest -m "not notebook"' in script, "the quick run"
    assert '"$VENV/bin/mypy"' in script


def test_pre_commit_runs_ruff_and_mypy():
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"] for repo in config["repos"] for h in repo["hooks"]}
    assert {"ruff-check", "ruff-format", "mypy"} <= hooks


def test_readme_leads_with_the_two_commands():
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```")[1]
    assert "./run_notebooks.sh" in first_block and "./run_notebooks.sh test" in first_block


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
            if name.endswith(notebook_params.PATH_SUFFIXES) and isinstance(value, str):
                assert Path(value).is_absolute(), (nb.name, name, value)
