"""w2v2 against transformers on the paper's BASE configuration, same weights, same inputs.

Times, in one run, interleaving the two implementations so that machine load affects both alike:
  * inference on 10 s of audio, fp32 and under bf16 autocast;
  * one pretraining step (forward + backward) on a batch of 2 x 5 s, with the same masks and
    negatives (transformers gets them precomputed, so only the model is timed).

    .venv/bin/python benchmarks/core_speed.py [--repeats 6] [--threads 2]

Prints a table of median seconds per call and the ratio transformers / w2v2 (> 1: w2v2 faster).
"""

import argparse
import statistics
import time

import torch

from w2v2 import W2V2Config, W2V2ForPreTraining, to_transformers

SAMPLE_RATE = 16_000


def timed(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=6, help="rounds; even, so each side goes first equally often")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cases", nargs="+", default=["fp32", "bf16", "train"], choices=["fp32", "bf16", "train"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    torch.manual_seed(0)
    # Dropout and LayerDrop off so that both compute the same function on every call.
    config = W2V2Config.base(layerdrop=0.0, hidden_dropout=0.0, attention_dropout=0.0, feat_proj_dropout=0.0, feat_quantizer_dropout=0.0)
    ours = W2V2ForPreTraining(config).to(device)
    theirs = to_transformers(ours)

    audio_10s = 0.1 * torch.randn(1, 10 * SAMPLE_RATE, device=device)
    batch_5s = 0.1 * torch.randn(2, 5 * SAMPLE_RATE, device=device)
    mask, negatives = ours.sample_masks(batch_5s, generator=torch.Generator(device).manual_seed(0))

    def inference(model, bf16):
        def run():
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                model.wav2vec2(audio_10s)
        return run

    def train_step(model):
        def run():
            model.zero_grad(set_to_none=True)
            out = model(batch_5s, mask_time_indices=mask, sampled_negative_indices=negatives)
            out.loss.backward()
        return run

    cases = {
        "fp32": ("inference 10 s, fp32", lambda m: (m.eval(), inference(m, False))[1]),
        "bf16": ("inference 10 s, bf16 autocast", lambda m: (m.eval(), inference(m, True))[1]),
        "train": ("pretraining step 2 x 5 s", lambda m: (m.train(), train_step(m))[1]),
    }
    print(f"device={device} threads={args.threads} repeats={args.repeats} torch={torch.__version__}")
    print(f"{'case':32s} {'w2v2 s':>9s} {'transformers s':>15s} {'ratio':>7s}")
    for name, make in (cases[key] for key in args.cases):
        ours_times, theirs_times = [], []
        # Interleave one call of each per round, alternating which goes first: whichever runs
        # second in a fixed order gains a few percent from warm caches.
        for round_ in range(args.repeats):
            pair = [(ours, ours_times), (theirs, theirs_times)]
            for model, times in pair if round_ % 2 == 0 else pair[::-1]:
                times += timed(make(model), 1)
        a, b = statistics.median(ours_times), statistics.median(theirs_times)
        print(f"{name:32s} {a:9.3f} {b:15.3f} {b / a:7.2f}")


if __name__ == "__main__":
    main()
