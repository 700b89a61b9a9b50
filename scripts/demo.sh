#!/usr/bin/env bash
# The README's first command: set up (if needed), then run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TOKENIZERS_PARALLELISM=false
exec .venv/bin/python examples/quickstart.py "$@"
