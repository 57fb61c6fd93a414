"""Write environment.yml from pyproject.toml, the one list of dependencies.

    python tools/environment.py           print the environment.yml that pyproject.toml implies
    python tools/environment.py --write   write it to environment.yml
    python tools/environment.py --check   exit 1 when environment.yml is out of date

The conda environment installs everything (the core and every extra) through pip:
PyTorch no longer publishes conda packages and fastmri is pip-only.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
PYTHON = "3.11"
HEADER = """\
# Generated from pyproject.toml by tools/environment.py: edit pyproject.toml, then run
#   python tools/environment.py --write
# conda env create -f environment.yml && conda activate apslib
# Everything (the core and every extra) comes from pip: PyTorch no longer publishes conda
# packages, and fastmri is pip-only.
"""


def requirements(project: dict, extras: list[str] | None = None) -> list[str]:
    """The core dependencies followed by those of ``extras`` (default: every extra), in
    pyproject's order, without duplicates; the project's own extras (``apslib[data]``)
    are expanded in place."""
    name = project["name"]
    optional = project.get("optional-dependencies", {})
    out: list[str] = []
    seen: set[str] = set()

    def add(reqs: list[str]) -> None:
        for req in reqs:
            own = re.fullmatch(rf"{re.escape(name)}\[([^\]]+)\]", req.replace(" ", ""))
            if own:
                for extra in own.group(1).split(","):
                    if extra not in seen:
                        seen.add(extra)
                        add(optional[extra])
            elif req not in out:
                out.append(req)

    add(project.get("dependencies", []))
    for extra in optional if extras is None else extras:
        if extra not in seen:
            seen.add(extra)
            add(optional[extra])
    return out


def render(pyproject_text: str) -> str:
    project = tomllib.loads(pyproject_text)["project"]
    lines = [
        HEADER.rstrip("\n"),
        f"name: {project['name']}",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        f"  - python={PYTHON}",
        "  - pip",
        "  - pip:",
        *(f"      - {req}" for req in requirements(project)),
        "      - -e .",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    expected = render((REPO / "pyproject.toml").read_text())
    target = REPO / "environment.yml"
    if argv == ["--write"]:
        target.write_text(expected)
        return 0
    if argv == ["--check"]:
        if target.read_text() != expected:
            print("environment.yml is out of date: run python tools/environment.py --write", file=sys.stderr)
            return 1
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    sys.stdout.write(expected)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
