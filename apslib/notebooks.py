"""Run the numbered notebooks with papermill at a parameter profile.

``python -m apslib.notebooks [--profile smoke|default|paper] [--only 01 [--only 03]]
[--out DIR] [-p NAME VALUE ...] [--list]``; ``./run_notebooks.sh`` calls this after set-up.

Profiles live in ``notebooks/profiles/<name>.yaml``::

    all:            # applied to every notebook that declares the parameter
      seed: 0
    "01":           # by the notebook's number prefix
      size: 64

String values may contain ``{out}`` (the output folder) and ``{repo}``. Parameters whose
names end in ``_dir``, ``_root`` or ``_path`` are paths: relative ones are taken from the
repository root and passed to the notebook as absolute paths. ``-p NAME VALUE`` overrides
(the value is read as YAML, so ``-p depth 3`` is an int) and applies to every selected
notebook that declares ``NAME``; naming a parameter no selected notebook has is an error.
Every value (profile or ``-p``) is checked against the type of the notebook's default
before any kernel starts (:func:`apslib.notebook_params.check_type`): ``-p depth
notanumber`` stops with one line that names the notebook, the parameter and the type it
expects. Executed copies go to
``--out`` (default ``outputs/<profile>``), one per notebook, with a ``run_summary.json`` of
timings.

Without the runner
------------------
Each notebook also runs with plain papermill, from any folder::

    .venv/bin/papermill notebooks/01_theory_propositions.ipynb outputs/01.ipynb -k python3 \
        -p size 32 -p depth 2 -y 'channels: [4, 8, 16]'

The notebooks' path defaults are repository-relative (``outputs/data``) and their
derived-values cell passes every path parameter through :func:`resolve_path`, which takes
relative paths from the repository root (:func:`repo_root`), not from the kernel's working
directory: papermill started anywhere reads and writes the same folders as the runner.
(papermill's ``-p`` passes lists as text; give them with ``-y 'name: [..]'``. Its ``-p``
values are not type-checked: that is what the runner adds.)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import yaml

from .io import atomic_write_json
from .notebook_params import check_type, is_path_param, show

__all__ = [
    "repo_root",
    "resolve_path",
    "setup",
    "discover",
    "load_profile",
    "resolve_parameters",
    "check_kernel",
    "run",
    "main",
]


def repo_root() -> Path:
    """The repository root: the folder that holds ``notebooks/`` and ``pyproject.toml``.

    Found from this module's location: apslib is installed editable (``pip install -e .``,
    what ``run_notebooks.sh`` does), so ``apslib/`` lives in the checkout. For a
    non-editable install (apslib copied into site-packages) there is no checkout to find,
    and the *current working directory* is used instead.
    """
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file() and (here / "notebooks").is_dir():
        return here
    return Path.cwd()


def resolve_path(value: str | os.PathLike | None) -> str | None:
    """An absolute path for a notebook's path parameter.

    Relative paths are taken from the repository root (:func:`repo_root`), not from the
    kernel's working directory, so ``papermill`` started from any folder and
    ``./run_notebooks.sh`` read and write the same places. ``~`` is expanded, ``..`` is
    normalised (symlinks are not resolved); ``None`` (an optional path) stays ``None``.
    Every notebook's derived-values cell calls it on each of its path parameters.
    """
    if value is None:
        return None
    path = os.path.expanduser(os.fspath(value))
    return os.path.abspath(os.path.join(repo_root(), path))


OUTPUT_FOLDERS = ("results_dir", "figure_dir", "output_dir")


def setup(threads: int = 0, **paths) -> tuple[Path | None, ...]:
    """The one set-up call of a notebook (its derived-values cell): each path parameter,
    passed by name, made absolute (:func:`resolve_path`; ``None`` stays ``None``), the
    output folders among them (``results_dir``, ``figure_dir``, ``output_dir``) created,
    the figure style set, and torch's CPU threads set when ``threads`` is not 0. Returns
    the paths in the order given, as :class:`~pathlib.Path` objects::

        data_root, figure_dir = setup(data_root=data_root, figure_dir=figure_dir)
    """
    from . import plots  # matplotlib: only for a notebook, not for the runner

    out = []
    for name, value in paths.items():
        path = resolve_path(value)
        if path is not None and name in OUTPUT_FOLDERS:
            Path(path).mkdir(parents=True, exist_ok=True)
        out.append(None if path is None else Path(path))
    plots.set_style()
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    return tuple(out)


REPO = repo_root()
NOTEBOOK_DIR = REPO / "notebooks"
PROFILE_DIR = NOTEBOOK_DIR / "profiles"
KERNEL = "python3"


class RunnerError(RuntimeError):
    """A problem the user can fix; the message says how."""


class RunnerInterrupted(RunnerError):
    """Ctrl-C during a notebook: the message names it and how to rerun it."""


def discover(notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """Notebooks named ``NN_*.ipynb``, in number order."""
    return sorted(p for p in notebook_dir.glob("[0-9][0-9]_*.ipynb"))


def profiles(profile_dir: Path = PROFILE_DIR) -> list[str]:
    return sorted(p.stem for p in profile_dir.glob("*.yaml"))


def load_profile(name: str, profile_dir: Path = PROFILE_DIR) -> dict:
    path = profile_dir / f"{name}.yaml"
    if not path.is_file():
        raise RunnerError(
            f"unknown profile {name!r}: no {path}. Available: {', '.join(profiles(profile_dir))}"
        )
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise RunnerError(f"{path} must hold a mapping of notebook prefix -> parameters")
    return {str(k): (v or {}) for k, v in data.items()}


def _prefix(nb: Path) -> str:
    return nb.name[:2]


def _expand(name: str, value, out: Path):
    if isinstance(value, str):
        value = value.replace("{out}", str(out)).replace("{repo}", str(REPO))
        if is_path_param(name) and value:
            value = resolve_path(value)
    return value


def declared_parameters(nb: Path) -> dict:
    import papermill

    return papermill.inspect_notebook(str(nb))


def resolve_parameters(
    nb: Path, profile: dict, overrides: dict, out: Path, declared: dict | None = None, profile_name: str = ""
) -> dict:
    """The parameters to inject into ``nb``: profile ``all``, then its prefix, then -p.

    Each value is checked with :func:`check_type`; a wrong one raises :class:`RunnerError`
    naming where it came from (``-p NAME VALUE`` or the profile section).
    """
    declared = declared_parameters(nb) if declared is None else declared
    unknown = set(profile.get(_prefix(nb), {})) - set(declared)
    if unknown:
        raise RunnerError(
            f"profile sets {sorted(unknown)} for {nb.name}, which declares no such parameter "
            f"(it has: {sorted(declared)})"
        )
    params = {}
    prefix = _prefix(nb)
    label = f"profile {profile_name}".rstrip()
    sources = [
        (f"{label}, section all: ", profile.get("all", {})),
        (f'{label}, section "{prefix}": ', profile.get(prefix, {})),
        ("-p ", overrides),
    ]
    for where, source in sources:
        for name, value in source.items():
            if name not in declared:
                continue
            try:
                value = check_type(nb.name, name, value, declared[name])
            except TypeError as err:
                raise RunnerError(f"{where}{name} {show(value)}: {err}") from None
            params[name] = _expand(name, value, out)
    return params


def _same_environment(exe: str) -> bool:
    """Whether the kernel executable ``exe`` is this environment's Python.

    Only the *folders* are resolved, never the interpreter file: a venv's ``bin/python``
    is a symlink to the base interpreter, so resolving it would make every venv built from
    the same base Python look alike.
    """
    if exe in ("python", "python3", "{python}", "python{}.{}".format(*sys.version_info[:2])):
        return True  # the native kernel: jupyter_client starts it with sys.executable
    if not os.path.isabs(exe):
        return False  # some other name looked up on PATH: not necessarily this environment
    if os.path.abspath(exe) == os.path.abspath(sys.executable):
        return True
    folder = Path(os.path.abspath(exe)).parent.resolve()
    return folder in {
        Path(os.path.abspath(sys.executable)).parent.resolve(),
        (Path(sys.prefix) / ("Scripts" if os.name == "nt" else "bin")).resolve(),
    }


def check_kernel() -> None:
    """Make sure the ``python3`` kernel runs this environment's Python (not another venv's)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel as err:  # pragma: no cover - ipykernel is a dependency
        raise RunnerError(
            f"no Jupyter kernel {KERNEL!r}: run `{sys.executable} -m ipykernel install "
            f"--sys-prefix --name {KERNEL}`"
        ) from err
    exe = spec.argv[0]
    if not _same_environment(exe):
        raise RunnerError(
            f"the Jupyter kernel {KERNEL!r} runs {exe}, not this environment's "
            f"{sys.executable}; run `{sys.executable} -m ipykernel install --sys-prefix "
            f"--name {KERNEL}` (run_notebooks.sh does this)"
        )


def run(
    profile_name: str = "default",
    only: list[str] | None = None,
    out: Path | None = None,
    overrides: dict | None = None,
    log_output: bool = False,
) -> list[dict]:
    """Execute the selected notebooks in order; returns one record per notebook.

    Raises :class:`RunnerError` naming the failed notebook and its executed copy.
    """
    import papermill

    os.environ.setdefault("JUPYTER_PREFER_ENV_PATH", "1")
    profile = load_profile(profile_name)
    notebooks = discover()
    if only:
        wanted = {o[:2] if o[:2].isdigit() else o for o in only}
        notebooks = [nb for nb in notebooks if _prefix(nb) in wanted or nb.stem in wanted]
        if not notebooks:
            raise RunnerError(
                f"--only {' '.join(only)} matches no notebook; have: "
                f"{', '.join(nb.name for nb in discover())}"
            )
    out = Path(out or REPO / "outputs" / profile_name).resolve()
    overrides = overrides or {}
    declared = {nb: declared_parameters(nb) for nb in notebooks}
    unused = set(overrides) - set().union(*declared.values())
    if unused:
        raise RunnerError(f"-p {sorted(unused)}: no selected notebook declares such a parameter")
    # Every notebook's parameters are resolved and type-checked before any kernel starts.
    resolved = {
        nb: resolve_parameters(nb, profile, overrides, out, declared[nb], profile_name) for nb in notebooks
    }
    check_kernel()
    out.mkdir(parents=True, exist_ok=True)

    records = []
    total = time.perf_counter()
    for nb in notebooks:
        params = resolved[nb]
        executed = out / nb.name
        # One line per notebook: its name now, its verdict and time when it ends.
        print(f"[{profile_name}] {nb.name} ...", end="\n" if log_output else " ", flush=True)
        start = time.perf_counter()
        try:
            with _local_kernel_sockets() as manager:
                papermill.execute_notebook(
                    str(nb),
                    str(executed),
                    parameters=params,
                    kernel_name=KERNEL,
                    cwd=str(NOTEBOOK_DIR),
                    progress_bar=False,
                    log_output=log_output,
                    kernel_manager_class=manager,
                    extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
                )
        except (Exception, KeyboardInterrupt) as err:  # papermill wraps the cell's exception
            seconds = time.perf_counter() - start
            interrupted = isinstance(err, KeyboardInterrupt)
            print("interrupted" if interrupted else "failed", flush=True)
            records.append({"notebook": nb.name, "ok": False, "seconds": round(seconds, 1)})
            _write_summary(out, profile_name, records)
            if interrupted:
                raise RunnerInterrupted(
                    f"interrupted during {nb.name} after {seconds:.1f} s (profile {profile_name}); "
                    f"the notebooks before it finished (executed copies in {out}); rerun it with "
                    f"--only {_prefix(nb)}"
                ) from None
            raise RunnerError(_failure_message(nb.name, executed, seconds, profile_name, err)) from err
        seconds = time.perf_counter() - start
        print(
            f"ok in {seconds:.1f} s"
            if not log_output
            else f"[{profile_name}] {nb.name} ok in {seconds:.1f} s"
        )
        records.append({"notebook": nb.name, "ok": True, "seconds": round(seconds, 1), "parameters": params})
        _write_summary(out, profile_name, records)
    print(
        f"[{profile_name}] {len(records)} notebook(s) in {time.perf_counter() - total:.1f} s; "
        f"executed copies in {out}"
    )
    return records


def _failure_message(name: str, executed: Path, seconds: float, profile: str, err: BaseException) -> str:
    """The failed notebook, its executed copy, the failing cell's source and its error, once."""
    head = f"notebook {name} failed after {seconds:.1f} s (profile {profile}); executed copy: {executed}"
    ename = getattr(err, "ename", None)
    if ename is None:  # not a cell's error: the kernel died, a timeout, a file error
        lines = [ln for ln in str(err).strip().splitlines() if ln.strip()]
        return f"{head}\n{type(err).__name__}: {lines[-1] if lines else ''}"
    source = str(getattr(err, "source", "")).rstrip().splitlines()
    if len(source) > _SOURCE_LINES:
        source = source[:_SOURCE_LINES] + [f"... ({len(source) - _SOURCE_LINES} more lines)"]
    cell = getattr(err, "exec_count", None)
    body = "\n".join("    " + line for line in source)
    return f"{head}\nfailing cell [{cell}]:\n{body}\n{ename}: {getattr(err, 'evalue', '')}"


_SOURCE_LINES = 20


@contextlib.contextmanager
def _local_kernel_sockets():
    """A kernel manager class whose kernel talks over Unix sockets in a private temporary
    folder (IPC transport) instead of TCP on localhost: no other user of the machine can
    connect to the kernel, and the kernel prints no unencrypted-TCP warning into the
    runner's output. The folder and its sockets are removed afterwards."""
    from jupyter_client import AsyncKernelManager

    with tempfile.TemporaryDirectory(prefix="apslib-kernel-") as folder:
        os.chmod(folder, 0o700)

        class LocalKernelManager(AsyncKernelManager):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.transport = "ipc"
                self.ip = os.path.join(folder, "kernel")

        yield LocalKernelManager


def _write_summary(out: Path, profile: str, records: list[dict]) -> None:
    atomic_write_json(out / "run_summary.json", {"profile": profile, "notebooks": records})


def _parse_overrides(pairs) -> dict:
    out = {}
    for name, value in pairs or []:
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            raise RunnerError(f"-p {name!r}: not a parameter name")
        try:
            out[name] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            where = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise RunnerError(
                f"-p {name} {value!r}: not a YAML value ({where}); quote lists whole, e.g. -p {name} '[4, 8]'"
            ) from None
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="run_notebooks.sh", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="default", help="smoke | default | long | paper (default: default)")
    ap.add_argument(
        "--only", action="append", metavar="NN", help="run only notebook NN (repeatable), e.g. --only 01"
    )
    ap.add_argument("--out", type=Path, help="folder for executed notebooks (default outputs/<profile>)")
    ap.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="override a notebook parameter (value read as YAML)",
    )
    ap.add_argument("--log-output", action="store_true", help="stream cell output to the terminal")
    ap.add_argument("--list", action="store_true", help="list notebooks and profiles, then exit")
    args = ap.parse_args(argv)
    try:
        if args.list:
            for nb in discover():
                print(nb.name)
            print("profiles:", ", ".join(profiles()))
            return 0
        run(args.profile, args.only, args.out, _parse_overrides(args.parameter), args.log_output)
    except RunnerInterrupted as err:
        print(f"error: {err}", file=sys.stderr)
        return 130
    except RunnerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before any notebook started
        print("error: interrupted before any notebook ran", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
