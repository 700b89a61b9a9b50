"""How good are a model's frozen features for CTC? Linear CTC probes on every layer.

For each checkpoint given (and a random initialisation of the first one's architecture), the
frozen model encodes a labeled split once; then one linear CTC head per layer (the projected
features ``z`` fed to the Transformer, and the output of every Transformer block ``c_l``) is
trained on the cached frames for many epochs and scored by greedy CER on a second split. It
answers: which layer carries the most phonetic content (Pasad et al., arXiv 2107.04734), and
is a pretrained model's frozen representation better than a random one's (the issue's "lever 1
pays only on a pretrained model whose frozen features are already good").

    .venv/bin/python benchmarks/layer_probe.py --corpus runs/lr_full_fast/corpus \\
        --model runs/lr_full_fast/pretrain --train_split train_10min --eval_split validation
"""

from __future__ import annotations

import argparse
import csv
import platform
import time
from pathlib import Path

import jiwer
import soundfile
import torch
import torch.nn.functional as F

from w2v2 import W2V2Config, W2V2FeatureExtractor, W2V2Model
from w2v2.training.collators import normalize_transcript


def read_split(folder: Path) -> list[tuple[Path, str]]:
    """(audio path, normalised transcript) of every row of ``folder/metadata.csv``."""
    with open(folder / "metadata.csv", newline="") as handle:
        return [(folder / row["file_name"], normalize_transcript(row["transcription"])) for row in csv.DictReader(handle)]


@torch.no_grad()
def encode(model: W2V2Model, extractor: W2V2FeatureExtractor, rows) -> list[list[torch.Tensor]]:
    """Per utterance, the list [z_proj, c_1, ..., c_L] of (T, D) frames, no masking."""
    model.eval()
    layers = []
    for path, _ in rows:
        audio, rate = soundfile.read(path, dtype="float32")
        inputs = extractor(audio, sampling_rate=rate, return_tensors="pt")
        out = model(inputs.input_values, output_hidden_states=True)
        layers.append([h[0] for h in out.hidden_states[:-1]] + [out.last_hidden_state[0]])
    return layers


def train_probe(features, targets, vocab_size: int, *, epochs: int, lr: float, seed: int) -> torch.nn.Linear:
    """A linear CTC head on frozen (T, D) frames, full-batch Adam; ``targets`` are id lists (blank = 0)."""
    torch.manual_seed(seed)
    x = torch.nn.utils.rnn.pad_sequence(features, batch_first=True)  # (N, T, D)
    lengths = torch.tensor([len(f) for f in features])
    y = torch.cat([torch.tensor(t) for t in targets])
    y_lengths = torch.tensor([len(t) for t in targets])
    mean, std = torch.cat(features).mean(0), torch.cat(features).std(0) + 1e-5
    head = torch.nn.Linear(x.shape[-1], vocab_size)
    head.register_buffer("mean", mean)
    head.register_buffer("std", std)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(epochs):
        log_probs = head((x - mean) / std).log_softmax(-1).transpose(0, 1)  # (T, N, V)
        loss = F.ctc_loss(log_probs, y, lengths, y_lengths, blank=0, zero_infinity=True)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return head


def greedy_cer(head, features, texts, alphabet: str) -> float:
    hypotheses = []
    with torch.no_grad():
        for f in features:
            ids = head((f - head.mean) / head.std).argmax(-1).tolist()
            chars = [alphabet[i - 1] for j, i in enumerate(ids) if i != 0 and (j == 0 or i != ids[j - 1])]
            hypotheses.append("".join(chars).replace("|", " ").strip())
    return jiwer.cer(texts, [h if h else " " for h in hypotheses])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--model", type=Path, nargs="+", required=True, help="pretrained checkpoints (w2v2 folders)")
    parser.add_argument("--train_split", default="train_10min")
    parser.add_argument("--eval_split", default="validation")
    parser.add_argument("--epochs", type=int, default=1500)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    train_rows, eval_rows = read_split(args.corpus / args.train_split), read_split(args.corpus / args.eval_split)
    alphabet = "".join(sorted({c for _, t in train_rows for c in t.replace(" ", "|")}))
    targets = [[alphabet.index(c) + 1 for c in t.replace(" ", "|")] for _, t in train_rows]
    eval_texts = [t for _, t in eval_rows]
    print(f"CPU: {platform.processor() or platform.machine()}; {len(train_rows)} train / {len(eval_rows)} eval utterances; "
          f"linear CTC probes, {args.epochs} full-batch epochs, lr {args.lr}")  # fmt: skip
    models = {str(m): W2V2Model.from_pretrained(m) for m in args.model}
    first = args.model[0]
    torch.manual_seed(args.seed)
    models["random init"] = W2V2Model(W2V2Config.from_pretrained(first))
    extractor = W2V2FeatureExtractor.from_pretrained(first)
    for name, model in models.items():
        start = time.time()
        train_layers, eval_layers = encode(model, extractor, train_rows), encode(model, extractor, eval_rows)
        cers = []
        for layer in range(len(train_layers[0])):
            head = train_probe([u[layer] for u in train_layers], targets, len(alphabet) + 1, epochs=args.epochs, lr=args.lr, seed=args.seed)
            cers.append(greedy_cer(head, [u[layer] for u in eval_layers], eval_texts, alphabet))
        print(f"{name}: " + ", ".join(f"{'z' if i == 0 else f'c{i}'} {c:.3f}" for i, c in enumerate(cers))
              + f"  ({time.time() - start:.0f} s)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
