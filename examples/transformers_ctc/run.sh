#!/usr/bin/env bash
# transformers' own CTC fine-tuning example on a w2v2 pretraining folder, offline.
#
#   bash examples/transformers_ctc/run.sh PATH/TO/run_speech_recognition_ctc.py [WORK_DIR]
#
# PATH is your copy of examples/pytorch/speech-recognition/run_speech_recognition_ctc.py from
# transformers' repository (w2v2 does not ship it), with `import w2v2` added after its imports
# and the edits transformers 5 itself needs (README, "transformers' CTC example"). This script
# makes the rest in WORK_DIR (default: a new temporary folder): a small slice of the demo
# corpus as an audiofolder with train/ and test/ splits, a w2v2 pretraining folder (20
# updates of the tiny recipe), and a local WER metric for `evaluate` (the Hub's is unreachable
# offline); then it runs the example for 30 steps with gradient checkpointing, exports the
# result with `w2v2-export --format transformers`, and transcribes a test file with
# `pipeline()` in a process that never imports w2v2.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
example=$(realpath "${1:?usage: run.sh PATH/TO/run_speech_recognition_ctc.py [WORK_DIR]}")
work=${2:-$(mktemp -d)}
[ -f "$example" ] || { echo "no file at $example: pass your copy of transformers' run_speech_recognition_ctc.py" >&2; exit 2; }
bash "$root/scripts/setup.sh" >/dev/null
py=$root/.venv/bin/python
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$work" && cd "$work"
echo "[ctc-example] working in $work"

[ -d corpus ] || "$root/.venv/bin/w2v2-synth-corpus" --out corpus --scale 0.02 --jobs 1 >/dev/null
# datasets' audiofolder names splits after sub-folders (and does not follow links)
[ -d asr ] || { mkdir asr && cp -r corpus/train_1h asr/train && cp -r corpus/test_clean asr/test; }
[ -d pretrained ] || "$root/.venv/bin/w2v2-pretrain" --dataset corpus --split pretrain --output_dir pretrained \
  --recipe tiny --max_updates 20 --logging_steps 10 >pretrain.log 2>&1

rm -rf finetuned finetuned-transformers
"$py" "$example" --model_name_or_path pretrained --dataset_name asr --train_split_name train \
  --eval_split_name test --text_column_name transcription --eval_metrics "$here/wer.py" \
  --output_dir finetuned --do_train --do_eval --max_steps 30 --per_device_train_batch_size 4 \
  --per_device_eval_batch_size 4 --learning_rate 1e-3 --warmup_steps 5 --logging_steps 10 \
  --gradient_checkpointing --save_strategy no --report_to none >example.log 2>&1 \
  || { tail -20 example.log; echo "[ctc-example] the example failed; full log: $work/example.log" >&2; exit 1; }
grep -E "train_loss|eval_loss|wer.py" example.log

"$root/.venv/bin/w2v2-export" --format transformers finetuned finetuned-transformers >/dev/null
"$py" - <<'PY'
import csv, sys
from transformers import pipeline
asr = pipeline("automatic-speech-recognition", model="finetuned-transformers")
row = next(csv.DictReader(open("asr/test/metadata.csv")))
print(f"[ctc-example] {type(asr.model).__name__} + {type(asr.tokenizer).__name__}, w2v2 imported: "
      f"{'w2v2' in sys.modules}; transcript of {row['file_name']}: {asr('asr/test/' + row['file_name'])['text']!r}")
PY
