#!/usr/bin/env bash
# The whole test suite on a fresh machine: venvs, packages, the test Slurm cluster's packages,
# ruff, then pytest against the newest and the oldest supported hydra-core 1.3.
set -euo pipefail
cd "$(dirname "$0")/.."

NEWEST_HYDRA="${NEWEST_HYDRA:-1.3.8}"
OLDEST_HYDRA="${OLDEST_HYDRA:-1.3.2}"
PY="${PYTHON:-python3}"

# the oldest hydra-core runs on the oldest supported Python (3.9) where this machine has one
oldest_python() {
  for candidate in python3.9 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.9*/bin/python3.9; do
    if "$candidate" -c 'import sys, venv; assert sys.version_info[:2] == (3, 9)' >/dev/null 2>&1; then
      echo "$candidate"; return
    fi
  done
  echo "$PY"
}
OLDEST_PY="${OLDEST_PYTHON:-$(oldest_python)}"

make_venv() {  # make_venv DIR HYDRA_VERSION PYTHON
  local dir="$1" version="$2" python="$3"
  [ -x "$dir/bin/python" ] || "$python" -m venv "$dir"
  "$dir/bin/python" -m pip install -q --upgrade pip
  "$dir/bin/python" -m pip install -q -e ".[test]" --config-settings editable_mode=compat \
    "hydra-core==$version"
}

if [ "$(id -u)" = 0 ] && [ -x scripts/install_slurm.sh ]; then
  scripts/install_slurm.sh
fi
# Debian's chromium: the report test renders report.html in it, headless
if [ "$(id -u)" = 0 ] && ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

make_venv .venv "$NEWEST_HYDRA" "$PY"
make_venv .venv-oldest "$OLDEST_HYDRA" "$OLDEST_PY"

.venv/bin/ruff check .

if [ -n "${CI:-}" ]; then export GRID_SWEEPER_REQUIRE_SLURM=1 GRID_SWEEPER_REQUIRE_BROWSER=1; fi

echo "== pytest, hydra-core $NEWEST_HYDRA"
.venv/bin/python -m pytest -n 2 -q tests "$@"
echo "== pytest, hydra-core $OLDEST_HYDRA, $(.venv-oldest/bin/python --version)"
.venv-oldest/bin/python -m pytest -n 2 -q tests "$@"
