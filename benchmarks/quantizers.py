"""Gumbel-softmax against vq-wav2vec's k-means quantizer on the CPU recipe (issue 18).

Each quantizer: `small`-recipe pretraining on the corpus's unlabeled split (same seed, schedule
and number of updates), then the low-resource example's fine-tuning on train_10min. Printed:
contrastive accuracy and code perplexity at the end of pretraining (mean of the last 3 logs),
and the fine-tuned model's validation and test CER.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/quantizers.py --corpus outputs/low_resource_short/corpus \
        --updates 1670 --out outputs/quantizers

The corpus is the short variant's (``bash scripts/demo.sh`` makes it); ``--updates`` stops each
pretraining run there on the variant's schedule (its ``pretrain_updates``), as the example's
time budget does. Runs already in ``--out`` are resumed or kept.
"""

import argparse
import importlib.util
import json
from pathlib import Path

from w2v2.training.pretrain import PretrainArguments
from w2v2.training.pretrain import train as pretrain

ROOT = Path(__file__).resolve().parents[1]


def _example():
    spec = importlib.util.spec_from_file_location("low_resource_run", ROOT / "examples" / "low_resource" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("outputs/quantizers"))
    parser.add_argument("--updates", type=int, default=1670)
    parser.add_argument("--variant", default="short")
    parser.add_argument("--quantizers", nargs="+", default=["gumbel", "kmeans"], choices=["gumbel", "kmeans"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    example = _example()
    variant = example.VARIANTS[args.variant]
    rows = []
    for quantizer in args.quantizers:
        out = args.out / quantizer
        pretrained = pretrain(PretrainArguments(
            dataset=str(args.corpus / "pretrain"), output_dir=str(out / "pretrain"), recipe="small", seed=args.seed,
            max_updates=variant.pretrain_updates, stop_after_updates=args.updates, stop_on_collapse=False, resume=True,
            config_overrides=json.dumps({"quantizer": quantizer}),
        ))  # fmt: skip
        logs = [json.loads(line) for line in (Path(pretrained) / "runs" / "metrics.jsonl").read_text().splitlines()][-3:]
        run = example.finetune(out, args.corpus, "train_10min", start=str(pretrained), config=Path(pretrained) / "config.json",
                               variant=variant, seed=args.seed)  # fmt: skip
        rows.append({"quantizer": quantizer, "updates": logs[-1]["step"],
                     "accuracy": sum(r["contrastive_accuracy"] for r in logs) / 3,
                     "code_perplexity": sum(r["code_perplexity"] for r in logs) / 3,
                     "best_validation_cer": min(c for _, c in run["validation_cer_curve"]),
                     "test_clean_cer": run["test_clean_cer"], "test_other_cer": run["test_other_cer"]})
    print(f"\nCPU: {_cpu()}; corpus {args.corpus}, {args.variant} variant's schedule")
    print("| quantizer | pretraining updates | contrastive accuracy | code perplexity | best validation CER | test_clean CER | test_other CER |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['quantizer']} | {r['updates']} | {r['accuracy']:.3f} | {r['code_perplexity']:.1f} | "
              f"{r['best_validation_cer']:.3f} | {r['test_clean_cer']:.3f} | {r['test_other_cer']:.3f} |")
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
