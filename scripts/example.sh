#!/usr/bin/env bash
# The main job on a fresh machine: a venv, the package, and an example sweep run locally.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e . --config-settings editable_mode=compat
exec .venv/bin/python example_app/train.py -m hydra/sweeper=grid hydra/launcher=grid_local \
  lr="loguniform(1e-3,3e-1,3)" epochs="[5, 20]" optimizer=sgd,momentum hydra.sweeper.seed=7 "$@"
