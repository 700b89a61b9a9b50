"""The CPU pretraining experiment of issue 7: does the ``small`` recipe learn within 20 minutes?

    python benchmarks/pretrain_small.py --corpus runs/corpus --out runs/pt-small --minutes 20 \
        [--name NAME] [--figure benchmarks/figures/pretrain_small.png] [-- extra w2v2-pretrain flags]

Runs ``w2v2-pretrain --recipe small`` on the ``pretrain`` split of the demo corpus (generate it
with ``w2v2-synth-corpus --out runs/corpus --pretrain-minutes 60``) for at most ``--minutes`` of
wall time, then reads ``runs/metrics.jsonl`` and prints one markdown table row: updates, minutes,
final contrastive accuracy (mean of the last 5 logs) as a multiple of chance 1/(K+1), whether it
is still rising (last fifth of the run above the fifth before), code perplexity against G, and
the verdict. Success: accuracy >= 5x chance, still rising, code perplexity > 4 G.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def summarize(run_dir: Path) -> dict:
    history = [json.loads(line) for line in (run_dir / "runs" / "metrics.jsonl").read_text().splitlines()]
    config = json.loads((run_dir / "config.json").read_text())
    chance = 1 / (config["num_negatives"] + 1)
    groups = config["num_codevector_groups"]
    acc = [r["contrastive_accuracy"] for r in history]
    tail = max(1, len(acc) // 5)
    final = sum(acc[-5:]) / len(acc[-5:])
    last, before = acc[-tail:], acc[-2 * tail : -tail] or acc[:1]
    rising = sum(last) / len(last) > sum(before) / len(before)
    ppl = sum(r["code_perplexity"] for r in history[-5:]) / len(history[-5:])
    # Accuracy before learning starts (first 5 logs) is a little above 1/(K+1): distractors
    # that quantize to the positive's codewords are excluded. Reported as a second yardstick.
    initial = sum(acc[:5]) / len(acc[:5])
    return {
        "updates": history[-1]["step"],
        "minutes": round(history[-1]["elapsed_minutes"], 1),
        "K": config["num_negatives"],
        "accuracy": round(final, 3),
        "x_chance": round(final / chance, 2),
        "x_initial": round(final / initial, 2),
        "rising": rising,
        "code_perplexity": round(ppl, 1),
        "G": groups,
        "contrastive_loss": round(sum(r["contrastive_loss"] for r in history[-5:]) / len(history[-5:]), 3),
        "audio_hours_seen": round(history[-1]["audio_hours"], 2),
        "passed": final >= 5 * chance and rising and ppl > 4 * groups,
    }


def replot(run_dir: Path, figure: Path, name: str) -> Path:
    """The run's curves again, at a resolution small enough to commit (about 90 kB)."""
    from w2v2 import W2V2Config
    from w2v2.training.plotting import plot_curves
    from w2v2.training.plotting import PRETRAINING_PANELS, pretraining_reference_lines

    history = [json.loads(line) for line in (run_dir / "runs" / "metrics.jsonl").read_text().splitlines()]
    return plot_curves(history, figure, panels=PRETRAINING_PANELS, references=pretraining_reference_lines(W2V2Config.from_pretrained(run_dir)),
                       log_scale=("grad_norm",), title=f"w2v2 pretraining, recipe small, run {name}", dpi=55)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="runs/corpus")
    parser.add_argument("--out", default="runs/pt-small")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--name", default="small")
    parser.add_argument("--figure", default=None, help="copy the curves PNG here")
    parser.add_argument("--threads", default="1", help="OMP_NUM_THREADS of the run; 1 avoids spin-waiting when the cores are shared")
    parser.add_argument("extra", nargs="*", help="more w2v2-pretrain flags (after --)")
    args = parser.parse_args(argv)

    command = [sys.executable, "-m", "w2v2.training.pretrain", "--dataset", str(Path(args.corpus) / "pretrain"),
               "--output_dir", args.out, "--recipe", "small", "--max_minutes", str(args.minutes), *args.extra]
    started = time.time()
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": args.threads})
    row = summarize(Path(args.out)) | {"name": args.name, "wall_minutes": round((time.time() - started) / 60, 1)}
    if args.figure:
        replot(Path(args.out), Path(args.figure), args.name)
    print(json.dumps(row))
    print(table_row(row))


def table_row(row: dict) -> str:
    return (f"| {row['name']} | {row['updates']} | {row['minutes']} | {row['accuracy']} | {row['x_chance']}x "
            f"| {row['x_initial']}x | {'yes' if row['rising'] else 'no'} | {row['code_perplexity']} "
            f"| {row['contrastive_loss']} | {'PASS' if row['passed'] else 'fail'} |")


if __name__ == "__main__":
    main()
