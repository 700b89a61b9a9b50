"""Issue 19's levers that are not in the example, as pilots on the short variant
(benchmarks/RESULTS.md, "Issue 19, second attempt", "third attempt" and "fourth attempt"): none of them helped.

Self-training (lever 4): a fine-tuned model labels the unlabeled split, the most confident
fraction (mean log-probability of the greedy path) is kept, and a corpus folder is written
whose ``train_st`` split is the labeled split plus the pseudo-labeled clips (links, no copies):

    .venv/bin/python benchmarks/issue19_pilots.py pseudo-label --model outputs/s35_base/pretrained_train_10min \\
        --corpus outputs/s35_base/corpus --out /tmp/st_corpus --keep 0.5 [--lm outputs/s35_base/lm/words_3gram.arpa]
    .venv/bin/w2v2-finetune ... --dataset_name_or_path /tmp/st_corpus --train_split train_st

Linear probing, then fine-tuning (LP-FT, lever 1): before the first update, the CTC head is
trained alone on the frozen, unmasked outputs c of the training split, computed once (full-batch
Adam), then ``w2v2-finetune`` goes on as usual with every flag given after ``lp-ft``:

    .venv/bin/python benchmarks/issue19_pilots.py lp-ft --epochs 300 -- --model_name_or_path ... (w2v2-finetune flags)

Speed-perturbed labeled clips (lever 3 on the fine-tuning side, third attempt): every training
clip is played s ~ U(low, high) times faster each time it is drawn; evaluation audio is untouched:

    .venv/bin/python benchmarks/issue19_pilots.py speed-finetune --low 0.9 --high 1.1 --seed 0 -- (w2v2-finetune flags)

Greedy CER per voice of a split (fourth attempt): one row per voice of the ``speaker`` column
(the espeak-ng variant after "+", or the engine's voice), errors and characters summed per voice:

    .venv/bin/python benchmarks/issue19_pilots.py per-voice --model outputs/s39/pretrained_train_10min \
        --split outputs/s39/corpus/test_clean

The third attempt's figure: test CER of every pilot, one dot per fine-tuning seed, groups of run
folders (each holding ``all_results.json``) given as ``LABEL=DIR,DIR,...``:

    .venv/bin/python benchmarks/issue19_pilots.py plot --out fig.png --bar 0.594 "reference=runs/a,runs/b" ...
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import jiwer
import numpy as np
import torch
import torch.nn.functional as F
from transformers import TrainerCallback

from w2v2 import W2V2ForCTC, W2V2Processor
from w2v2.processing.audio import SAMPLE_RATE, load_audio, speed_perturb
from w2v2.training import finetune
from w2v2.training.collators import normalize_transcript
from w2v2.training.ctc_trainer import CTCTrainer


def _metadata(split: Path) -> list[dict[str, str]]:
    """The rows of a corpus split's metadata.csv."""
    with open(split / "metadata.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@torch.no_grad()
def pseudo_label(model_dir: Path, corpus: Path, out: Path, keep: float, lm: str | None, split: str = "pretrain") -> None:
    model, processor = W2V2ForCTC.from_pretrained(model_dir).eval(), W2V2Processor.from_pretrained(model_dir)
    decoder = None
    if lm:
        from w2v2.processing.lm_decoder import NgramCTCDecoder

        decoder = NgramCTCDecoder(processor.tokenizer, lm, beam_width=32, alpha=0.6, beta=2.0)
    rows = _metadata(corpus / split)
    scored = []  # (confidence, row, hypothesis)
    for row in rows:
        inputs = processor(audio=load_audio(str(corpus / split / row["file_name"]), SAMPLE_RATE), sampling_rate=SAMPLE_RATE, return_tensors="pt")
        log_probs = model(inputs.input_values).logits[0].log_softmax(-1)  # (T, V)
        best = log_probs.max(-1)
        text = processor.tokenizer.decode(best.indices) if decoder is None else decoder(log_probs.numpy())[0]
        if text.strip():
            scored.append((float(best.values.mean()), row, text.strip()))
    scored.sort(key=lambda s: -s[0])
    kept = scored[: round(keep * len(rows))]
    for name, group in (("all", scored), ("kept", kept)):
        if group:  # the corpus is synthetic: its unlabeled split has the true transcripts to score against
            print(f"{name}: {len(group)} clips, CER against the truth {jiwer.cer([r['transcription'] for _, r, _ in group], [t for _, _, t in group]):.3f}")
    out.mkdir(parents=True, exist_ok=True)
    for other in ("validation", "test_clean", "test_other"):
        if not (out / other).exists():
            os.symlink((corpus / other).resolve(), out / other)
    train = out / "train_st"
    train.mkdir(exist_ok=True)
    labeled = [(row, row["transcription"], "train_10min") for row in _metadata(corpus / "train_10min")]
    with open(train / "metadata.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "transcription", "duration"])
        for row, text, source in labeled + [(row, text, split) for _, row, text in kept]:
            name = f"{source}_{row['file_name']}"
            if not (train / name).exists():
                os.symlink((corpus / source / row["file_name"]).resolve(), train / name)
            writer.writerow([name, text, row["duration"]])


@torch.no_grad()
def per_voice(model_dir: Path, split: Path) -> dict[str, tuple[int, int]]:
    """Greedy character errors and reference characters per voice of a corpus split, printed as CER."""
    model, processor = W2V2ForCTC.from_pretrained(model_dir).eval(), W2V2Processor.from_pretrained(model_dir)
    totals: dict[str, list[int]] = {}
    for row in _metadata(split):
        inputs = processor(audio=load_audio(str(split / row["file_name"]), SAMPLE_RATE), sampling_rate=SAMPLE_RATE, return_tensors="pt")
        hypothesis = processor.tokenizer.decode(model(inputs.input_values).logits[0].argmax(-1))
        reference = normalize_transcript(row["transcription"])
        edits = jiwer.process_characters(reference, hypothesis)
        voice = row["speaker"].rsplit("+", 1)[-1]  # espeak-ng "en-gb+aunty" -> "aunty"; "flite:rms" stays
        counts = totals.setdefault(voice, [0, 0])
        counts[0] += edits.substitutions + edits.deletions + edits.insertions
        counts[1] += len(reference)
    for voice, (errors, chars) in sorted(totals.items(), key=lambda item: -item[1][1]):
        print(f"{voice:12s} CER {errors / chars:.3f}  ({chars} characters)")
    errors, chars = (sum(c[i] for c in totals.values()) for i in (0, 1))
    print(f"{'all':12s} CER {errors / chars:.3f}  ({chars} characters)")
    return {voice: (errors, chars) for voice, (errors, chars) in totals.items()}


class LinearProbeFirst(TrainerCallback):
    """Before update 0: the CTC head alone, trained on c of every training clip computed once."""

    def __init__(self, epochs: int, lr: float):
        self.epochs, self.lr = epochs, lr

    def on_train_begin(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        if state.global_step > 0:
            return
        start, was_training = time.time(), model.training
        model.eval()
        frames, labels = [], []
        with torch.no_grad():
            for batch in train_dataloader:
                c = model.wav2vec2(batch["input_values"], attention_mask=batch.get("attention_mask")).last_hidden_state  # (B, T, D)
                mask = batch.get("attention_mask")
                lengths = model._get_feat_extract_output_lengths(mask.sum(-1)) if mask is not None else [c.shape[1]] * len(c)
                for i in range(len(c)):
                    frames.append(c[i, : int(lengths[i])].float())
                    labels.append(batch["labels"][i][batch["labels"][i] >= 0])
        x = torch.nn.utils.rnn.pad_sequence(frames, batch_first=True)  # (N, T, D)
        x_lengths, y_lengths = torch.tensor([len(f) for f in frames]), torch.tensor([len(y) for y in labels])
        optimizer = torch.optim.Adam(model.lm_head.parameters(), lr=self.lr)
        for _ in range(self.epochs):
            log_probs = model.lm_head(x).log_softmax(-1).transpose(0, 1)  # (T, N, V)
            loss = F.ctc_loss(log_probs, torch.cat(labels), x_lengths, y_lengths, blank=model.config.pad_token_id, zero_infinity=True)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"linear probe: {len(frames)} clips, {self.epochs} epochs, CTC loss {loss.item():.3f}, {time.time() - start:.0f} s")
        model.train(was_training)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    st = commands.add_parser("pseudo-label")
    st.add_argument("--model", type=Path, required=True)
    st.add_argument("--corpus", type=Path, required=True)
    st.add_argument("--out", type=Path, required=True)
    st.add_argument("--keep", type=float, default=0.5, help="fraction of the unlabeled clips kept, most confident first")
    st.add_argument("--lm", default=None, help="decode with this n-gram LM (alpha 0.6, beta 2) instead of greedily")
    lp = commands.add_parser("lp-ft")
    lp.add_argument("--epochs", type=int, default=300)
    lp.add_argument("--lr", type=float, default=1e-2)
    lp.add_argument("finetune_flags", nargs=argparse.REMAINDER)
    sp = commands.add_parser("speed-finetune")
    sp.add_argument("--low", type=float, default=0.9)
    sp.add_argument("--high", type=float, default=1.1)
    sp.add_argument("--seed", type=int, default=0, help="seed of the speed factors")
    sp.add_argument("finetune_flags", nargs=argparse.REMAINDER)
    pv = commands.add_parser("per-voice")
    pv.add_argument("--model", type=Path, required=True)
    pv.add_argument("--split", type=Path, required=True, help="a corpus split folder holding metadata.csv")
    pl = commands.add_parser("plot")
    pl.add_argument("--out", type=Path, required=True)
    pl.add_argument("--bar", type=float, default=None, help="a test_clean CER to draw as a dashed line (the bar)")
    pl.add_argument("groups", nargs="+", help="LABEL=DIR,DIR,... (run folders holding all_results.json)")
    args = parser.parse_args()
    if args.command == "pseudo-label":
        return pseudo_label(args.model, args.corpus, args.out, args.keep, args.lm)
    if args.command == "per-voice":
        return per_voice(args.model, args.split)
    if args.command == "plot":
        return plot_pilots(args.groups, args.out, args.bar)
    if args.command == "speed-finetune":
        rng = np.random.default_rng(args.seed)

        def played_faster(batch: dict) -> dict:  # each clip s times faster, s ~ U(low, high)
            clips = [load_audio(cell, SAMPLE_RATE) for cell in batch["audio"]]
            return {**batch, "audio": [speed_perturb(c, rng.uniform(args.low, args.high)) for c in clips]}

        class Trainer(CTCTrainer):
            def __init__(self, *a, **k):
                super().__init__(*a, **{**k, "train_dataset": k["train_dataset"].with_transform(played_faster)})
    else:
        class Trainer(CTCTrainer):
            def __init__(self, *a, **k):
                super().__init__(*a, **k)
                self.add_callback(LinearProbeFirst(args.epochs, args.lr))

    finetune.CTCTrainer = Trainer  # what finetune_ctc builds
    finetune.main([f for f in args.finetune_flags if f != "--"])


def plot_pilots(groups: list[str], out: Path, bar: float | None) -> None:
    """test_clean and test_other CER of each group of runs: a dot per run, a tick at the mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 0.45 * len(groups) + 1.5), sharey=True)
    for y, group in enumerate(groups):
        label, dirs = group.split("=", 1)
        results = [json.loads((Path(d) / "all_results.json").read_text()) for d in dirs.split(",")]
        for ax, split in zip(axes, ("test_clean", "test_other")):
            values = [r[f"{split}_cer"] for r in results]
            ax.plot(values, [y] * len(values), "o", color="tab:blue", alpha=0.6)
            ax.plot([np.mean(values)], [y], "|", color="black", markersize=16)
    for ax, split in zip(axes, ("test_clean", "test_other")):
        ax.set_xlabel(f"{split} CER (dots: fine-tuning seeds; bar: mean)")
        ax.grid(axis="x", alpha=0.3)
    if bar is not None:
        axes[0].axvline(bar, linestyle="--", color="tab:red", label=f"the bar: {bar:.3f}")
        axes[0].legend(loc="lower right")
    axes[0].set_yticks(range(len(groups)), [g.split("=", 1)[0] for g in groups])
    axes[0].invert_yaxis()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"figure: {out}")


if __name__ == "__main__":
    main()
