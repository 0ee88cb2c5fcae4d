#!/usr/bin/env bash
# Set up annobc in ./.venv: the package, its test tools, and the CPU build of torch.
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  "${PIP[@]}" --upgrade pip
fi
# The CPU build of torch, pinned here only: the data loader, the policy and training need it; the
# gui, tasks and env layers never import it.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  "${PIP[@]}" "torch==2.13.0"
fi
"${PIP[@]}" -e ".[test,train,web,import]"
# The browser the web app's end-to-end test drives (Debian's package; Playwright downloads nothing).
if [ ! -x /usr/bin/chromium ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
.venv/bin/python -c "import annobc, torch, sklearn, starlette, uvicorn, playwright, tifffile, zarr, pandas, tables" || { echo "setup: annobc failed to import" >&2; exit 1; }
