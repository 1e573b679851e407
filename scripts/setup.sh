#!/usr/bin/env bash
# Set up the current Python environment for this project (idempotent): its requirements, then the project
# itself as an editable install (`pip install -e .`).
#   bash scripts/setup.sh         runtime needs (test_demo.py)
#   bash scripts/setup.sh --dev   plus the test tools (pytest, ruff)
# PyTorch comes first and pinned (torch==2.13.0, the tested version) when none is installed, so that the
# requirements' `torch>=2.1` installs nothing more. If ../shared/model_zoo/team00_rfdn.pth exists (the
# project's third-party folder), it is linked into model_zoo/; elsewhere put the official file there yourself.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
requirements=requirements.txt
[ "${1:-}" = "--dev" ] && requirements=requirements-dev.txt

if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  "$PYTHON" -m pip install --quiet torch==2.13.0
fi
"$PYTHON" -m pip install --quiet -r "$requirements"
# The project's packages (models, utils, transform, training, pipeline), editable: the commands import them.
"$PYTHON" -m pip install --quiet --no-deps -e .

shared_rfdn=../shared/model_zoo/team00_rfdn.pth
if [ -f "$shared_rfdn" ] && [ ! -e model_zoo/team00_rfdn.pth ]; then
  ln -s "$(cd "$(dirname "$shared_rfdn")" && pwd)/team00_rfdn.pth" model_zoo/team00_rfdn.pth
  echo "linked model_zoo/team00_rfdn.pth -> $shared_rfdn"
fi
