"""CTC fine-tuning speed, w2v2 vs transformers, on the same config, weights and batch.

One training update = forward (SpecAugment on, as in fine-tuning) + CTC loss + backward +
Adam step, with the feature encoder frozen (the paper's recipe). Prints audio seconds
processed per wall-clock second for ``W2V2ForCTC`` and for transformers' ``Wav2Vec2ForCTC``
holding the same weights (``to_transformers``); the two are timed in alternation so that load
from other processes affects both alike.

    python benchmarks/finetune_speed.py --config base --batch_size 4 --seconds 5 --steps 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from w2v2 import W2V2Config, W2V2ForCTC, to_transformers

SAMPLE_RATE = 16_000
VOCAB = 32  # a character vocabulary of about LibriSpeech's size


def make_batch(batch_size: int, seconds: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
    samples = int(seconds * SAMPLE_RATE)
    labels_per_utterance = int(seconds * 15)  # ~15 characters per second of speech
    return {
        "input_values": 0.1 * torch.randn(batch_size, samples, generator=generator),  # (B, S)
        "labels": torch.randint(1, VOCAB, (batch_size, labels_per_utterance), generator=generator),  # (B, U)
    }


def update_seconds(model, optimizer, batch) -> float:
    start = time.perf_counter()
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=["tiny", "base"], default="base")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each utterance")
    parser.add_argument("--steps", type=int, default=5, help="timed updates per model")
    parser.add_argument("--warmup", type=int, default=1, help="untimed updates per model")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    torch.manual_seed(0)
    # fairseq base_10m fine-tuning: SpecAugment p=0.65/L=10 over time, 0.25/64 over channels
    recipe = dict(vocab_size=VOCAB, mask_time_prob=0.65, mask_time_length=10, mask_feature_prob=0.25,
                  mask_feature_length=64 if args.config == "base" else 4, layerdrop=0.0, ctc_zero_infinity=True)  # fmt: skip
    ours = W2V2ForCTC(getattr(W2V2Config, args.config)(**recipe)).to(device).train()
    theirs = to_transformers(ours).train()  # same weights, same config
    models = {"w2v2 W2V2ForCTC": ours, "transformers Wav2Vec2ForCTC": theirs}
    optimizers = {}
    for name, model in models.items():
        model.freeze_feature_encoder()
        optimizers[name] = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-5, betas=(0.9, 0.98))

    generator = torch.Generator().manual_seed(0)
    batches = [{k: v.to(device) for k, v in make_batch(args.batch_size, args.seconds, generator).items()}
               for _ in range(args.warmup + args.steps)]  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in models}
    for step, batch in enumerate(batches):  # alternate the models, update by update
        for name, model in models.items():
            elapsed = update_seconds(model, optimizers[name], batch)
            if step >= args.warmup:
                times[name].append(elapsed)

    audio = args.batch_size * args.seconds
    params = sum(p.numel() for p in ours.parameters()) / 1e6
    print(f"config={args.config} ({params:.1f} M parameters), batch {args.batch_size} x {args.seconds:g} s, "
          f"{args.steps} timed updates, device={device}, threads={torch.get_num_threads()}")  # fmt: skip
    print("| model | median s/update | audio s / s |")
    print("|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} | {audio / median:.1f} |")


if __name__ == "__main__":
    main()
