#!/usr/bin/env bash
# The README's first command: set up (if needed), then run the main job, the low-resource
# experiment in its short variant (<= 15 min on 2 CPU cores). Arguments go to the example,
# e.g. `bash scripts/demo.sh --variant full`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
exec .venv/bin/python examples/low_resource/run.py --variant short "$@"
