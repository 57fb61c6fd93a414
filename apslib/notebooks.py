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
Executed copies go to ``--out`` (default ``outputs/<profile>``), one per notebook, with a
``run_summary.json`` of timings.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import yaml

from .io import atomic_write_json

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO / "notebooks"
PROFILE_DIR = NOTEBOOK_DIR / "profiles"
PATH_SUFFIXES = ("_dir", "_root", "_path")
KERNEL = "python3"

__all__ = ["discover", "load_profile", "resolve_parameters", "run", "main"]


class RunnerError(RuntimeError):
    """A problem the user can fix; the message says how."""


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


def _is_path_param(name: str) -> bool:
    return name.endswith(PATH_SUFFIXES)


def _expand(name: str, value, out: Path):
    if isinstance(value, str):
        value = value.replace("{out}", str(out)).replace("{repo}", str(REPO))
        if _is_path_param(name) and value and not os.path.isabs(value):
            value = str((REPO / value).resolve())
    return value


def declared_parameters(nb: Path) -> dict:
    import papermill

    return papermill.inspect_notebook(str(nb))


def resolve_parameters(nb: Path, profile: dict, overrides: dict, out: Path,
                       declared: dict | None = None) -> dict:
    """The parameters to inject into ``nb``: profile ``all``, then its prefix, then -p."""
    declared = declared_parameters(nb) if declared is None else declared
    params = {}
    for source in (profile.get("all", {}), profile.get(_prefix(nb), {}), overrides):
        for name, value in source.items():
            if name in declared:
                params[name] = _expand(name, value, out)
    unknown = set(profile.get(_prefix(nb), {})) - set(declared)
    if unknown:
        raise RunnerError(
            f"profile sets {sorted(unknown)} for {nb.name}, which declares no such parameter "
            f"(it has: {sorted(declared)})"
        )
    return params


def check_kernel() -> None:
    """Make sure the ``python3`` kernel runs this environment's Python."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel as err:  # pragma: no cover - ipykernel is a dependency
        raise RunnerError(
            f"no Jupyter kernel {KERNEL!r}: run `{sys.executable} -m ipykernel install "
            f"--sys-prefix --name {KERNEL}`"
        ) from err
    exe = spec.argv[0]
    if exe in ("python", "python3", "{python}"):
        return  # the native kernel: jupyter_client starts it with sys.executable
    if Path(exe).resolve().parent != Path(sys.executable).resolve().parent:
        raise RunnerError(
            f"the Jupyter kernel {KERNEL!r} runs {exe}, not this environment's "
            f"{sys.executable}; run `{sys.executable} -m ipykernel install --sys-prefix "
            f"--name {KERNEL}` (run_notebooks.sh does this)"
        )


def run(profile_name: str = "default", only: list[str] | None = None, out: Path | None = None,
        overrides: dict | None = None, log_output: bool = False) -> list[dict]:
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
    out.mkdir(parents=True, exist_ok=True)
    overrides = overrides or {}
    declared = {nb: declared_parameters(nb) for nb in notebooks}
    unused = set(overrides) - set().union(*declared.values())
    if unused:
        raise RunnerError(f"-p {sorted(unused)}: no selected notebook declares such a parameter")
    check_kernel()

    records = []
    total = time.perf_counter()
    for nb in notebooks:
        params = resolve_parameters(nb, profile, overrides, out, declared[nb])
        executed = out / nb.name
        print(f"[{profile_name}] {nb.name} ...", flush=True)
        start = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(nb), str(executed), parameters=params, kernel_name=KERNEL,
                cwd=str(NOTEBOOK_DIR), progress_bar=False, log_output=log_output,
            )
        except Exception as err:  # papermill wraps the cell's exception
            seconds = time.perf_counter() - start
            records.append({"notebook": nb.name, "ok": False, "seconds": round(seconds, 1)})
            _write_summary(out, profile_name, records)
            last = str(err).strip().splitlines()
            detail = "\n".join(last[-12:])
            raise RunnerError(
                f"notebook {nb.name} failed after {seconds:.1f} s (profile {profile_name}).\n"
                f"Executed copy, with the failing cell: {executed}\n{detail}"
            ) from err
        seconds = time.perf_counter() - start
        print(f"[{profile_name}] {nb.name} ok in {seconds:.1f} s", flush=True)
        records.append({"notebook": nb.name, "ok": True, "seconds": round(seconds, 1),
                        "parameters": params})
        _write_summary(out, profile_name, records)
    print(f"[{profile_name}] {len(records)} notebook(s) in {time.perf_counter() - total:.1f} s; "
          f"executed copies in {out}")
    return records


def _write_summary(out: Path, profile: str, records: list[dict]) -> None:
    atomic_write_json(out / "run_summary.json", {"profile": profile, "notebooks": records})


def _parse_overrides(pairs) -> dict:
    out = {}
    for name, value in pairs or []:
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            raise RunnerError(f"-p {name!r}: not a parameter name")
        out[name] = yaml.safe_load(value)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="run_notebooks.sh", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="default", help="smoke | default | paper (default: default)")
    ap.add_argument("--only", action="append", metavar="NN",
                    help="run only notebook NN (repeatable), e.g. --only 01")
    ap.add_argument("--out", type=Path, help="folder for executed notebooks (default outputs/<profile>)")
    ap.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                    help="override a notebook parameter (value read as YAML)")
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
    except RunnerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
