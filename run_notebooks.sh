#!/usr/bin/env bash
# One entry point. On a fresh machine it creates the virtual environment, installs the
# project with every extra (pip install -e '.[all]'), registers the environment's Jupyter
# kernel, then:
#
#   ./run_notebooks.sh                      run every notebook in notebooks/ (default profile)
#   ./run_notebooks.sh --profile smoke      ... at another profile (smoke | default | long | paper)
#   ./run_notebooks.sh --only 01 --out DIR -p depth 3
#   ./run_notebooks.sh test [PYTEST ARGS]   the whole test suite, the papermill smoke run of
#                                           every notebook and the JupyterLab browser test
#                                           included (what CI runs; installs Debian's
#                                           chromium for it when missing)
#   ./run_notebooks.sh browser              only the browser test: notebooks run in JupyterLab
#                                           in headless Chromium
#   ./run_notebooks.sh quick [PYTEST ARGS]  the quick run: every test but the notebooks'
#                                           (pytest -m "not notebook")
#   ./run_notebooks.sh lint                 ruff check + ruff format --check
#   ./run_notebooks.sh typecheck            mypy on the core (settings in pyproject.toml)
#
# Environment: APSLIB_VENV (default ./.venv), PYTHON (interpreter used to create the venv),
# APSLIB_CHROMIUM (the browser test's Chromium, default /usr/bin/chromium).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${APSLIB_VENV:-$ROOT/.venv}"
STAMP="$VENV/.apslib-install-stamp"

die() { echo "run_notebooks.sh: $*" >&2; exit 1; }

find_python() {
  local candidates=("${PYTHON:-}" python3 python3.12 python3.11 python3.10 python)
  for py in "${candidates[@]}"; do
    [ -n "$py" ] || continue
    command -v "$py" >/dev/null 2>&1 || continue
    if "$py" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
      echo "$py"; return 0
    fi
  done
  return 1
}

install_stamp() {
  # Reinstall when the package metadata changes.
  cat "$ROOT/pyproject.toml" | cksum | cut -d' ' -f1
}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    local py
    py="$(find_python)" || die "no Python >= 3.10 with the venv module found. Install one \
(e.g. 'apt-get install python3 python3-venv') or set PYTHON=/path/to/python3."
    echo "Creating the virtual environment $VENV with $("$py" --version 2>&1) ..."
    "$py" -m venv "$VENV" || die "could not create $VENV (on Debian/Ubuntu: apt-get install python3-venv)"
  fi
  if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$(install_stamp)" ]; then
    local log="$VENV/install.log"
    echo "Installing apslib and its dependencies into $VENV (first time: a few minutes; log: $log) ..."
    local t0=$SECONDS
    if ! ( "$VENV/bin/python" -m pip install --upgrade pip \
           && "$VENV/bin/python" -m pip install -e "$ROOT[all]" ) >"$log" 2>&1; then
      tail -n 30 "$log" >&2
      die "installing the project failed; the full log is $log"
    fi
    "$VENV/bin/python" -c 'import apslib, torch, torchvision, fastmri.data, papermill' \
      || die "the environment installed but does not import; see $log"
    install_stamp >"$STAMP"
    echo "Installed in $((SECONDS - t0)) s."
  fi
  # The notebooks run on the kernel named python3: make it this environment's Python.
  "$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 \
      --display-name "Python 3 (apslib)" >/dev/null 2>&1 \
    || die "could not register the Jupyter kernel of $VENV"
}

browser_setup() {
  # The JupyterLab test drives Debian's chromium through Playwright (the dev extra); it never
  # downloads a browser of its own.
  local chromium="${APSLIB_CHROMIUM:-/usr/bin/chromium}"
  [ -x "$chromium" ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's chromium for the JupyterLab browser test (apt-get install chromium) ..."
    local t0=$SECONDS log="$VENV/chromium-install.log"
    if ! { apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }; } >"$log" 2>&1; then
      tail -n 20 "$log" >&2
      die "installing chromium failed (log: $log); install it yourself, or set APSLIB_CHROMIUM"
    fi
    echo "Installed chromium in $((SECONDS - t0)) s."
  else
    die "the JupyterLab browser test needs Chromium at $chromium: install it (Debian: sudo apt-get \
install chromium) or set APSLIB_CHROMIUM; without it run ./run_notebooks.sh test -m 'not browser'"
  fi
}

cd "$ROOT"
export JUPYTER_PREFER_ENV_PATH=1
export PYTHONDONTWRITEBYTECODE=1

case "${1:-}" in
  test)
    shift; setup
    case " $* " in *"not browser"*) ;; *) browser_setup ;; esac
    exec "$VENV/bin/python" -m pytest "$@" ;;
  browser)
    shift; setup; browser_setup
    exec "$VENV/bin/python" -m pytest -m browser "$@" ;;
  quick)
    shift; setup
    exec "$VENV/bin/python" -m pytest -m "not notebook" "$@" ;;
  lint)
    setup
    "$VENV/bin/ruff" check "$ROOT"
    exec "$VENV/bin/ruff" format --check "$ROOT" ;;
  typecheck)
    setup
    exec "$VENV/bin/mypy" ;;
  -h|--help)
    sed -n '2,21p' "$0"
    [ -x "$VENV/bin/python" ] && exec "$VENV/bin/python" -m apslib.notebooks --help
    exit 0 ;;
esac
setup
exec "$VENV/bin/python" -m apslib.notebooks "$@"
