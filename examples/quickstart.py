"""A first look at w2v2: build a tiny model, take one pretraining step and run CTC on speech.

    .venv/bin/python examples/quickstart.py

Speaks a sentence with espeak-ng (or falls back to a synthetic chirp), then:
  1. runs W2V2ForPreTraining forward and backward and prints the objective's figures;
  2. loads the same weights into W2V2ForCTC and prints the shape of its logits;
  3. exports the CTC model to transformers' Wav2Vec2ForCTC and checks both agree.
"""

import shutil
import subprocess
import tempfile

import numpy as np
import soundfile as sf
import soxr
import torch

from w2v2 import W2V2Config, W2V2ForCTC, W2V2ForPreTraining, to_transformers

SAMPLE_RATE = 16_000


def speech(text: str) -> np.ndarray:
    """16 kHz mono float32 audio of ``text`` from espeak-ng, or a chirp if it is not installed."""
    if shutil.which("espeak-ng"):
        with tempfile.NamedTemporaryFile(suffix=".wav") as f:
            subprocess.run(["espeak-ng", "-w", f.name, text], check=True)
            audio, rate = sf.read(f.name, dtype="float32")
        return soxr.resample(audio, rate, SAMPLE_RATE)
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t)).astype(np.float32)


def main():
    torch.manual_seed(0)
    audio = torch.from_numpy(speech("wav two vec learns speech from raw audio")).float()[None]  # (1, S)
    print(f"audio: {audio.shape[1] / SAMPLE_RATE:.2f} s")

    config = W2V2Config.tiny(num_negatives=20)
    model = W2V2ForPreTraining(config).train()
    print(f"W2V2ForPreTraining: {sum(p.numel() for p in model.parameters()):,} parameters")
    out = model(audio)
    out.loss.backward()
    n = out.num_masked.item()
    print(
        f"pretraining step: loss {out.loss.item():.3f} nats/masked frame "
        f"(chance ln(K+1) = {np.log(config.num_negatives + 1):.3f}), L_m {out.contrastive_loss.item() / n:.3f}, "
        f"accuracy {out.contrastive_accuracy.item():.3f}, masked frames {n}/{out.mask_time_indices.numel()}, "
        f"code perplexity {out.code_perplexity.item():.2f} of G*V = {config.num_codevector_groups * config.num_codevectors_per_group}"
    )

    with tempfile.TemporaryDirectory() as checkpoint:
        model.save_pretrained(checkpoint)
        ctc = W2V2ForCTC.from_pretrained(checkpoint).eval()
    with torch.no_grad():
        logits = ctc(audio).logits
        reference = to_transformers(ctc).eval()(audio).logits
    print(f"CTC logits: {tuple(logits.shape)} (batch, frames, vocabulary)")
    print(f"transformers' Wav2Vec2ForCTC on the same weights: max |difference| = {(logits - reference).abs().max().item():.2e}")


if __name__ == "__main__":
    main()
