"""Run-time choices that make w2v2 fast on the machine at hand.

* ``choose_mixed_precision("auto", ...)``: bf16 autocast only where this device runs it faster.
  CPUs differ: with bf16 matrix units (AMX, AVX512-BF16) bf16 matmuls run 2-7x faster than
  fp32, without them (AVX2 only) they run several times slower. So "auto" measures: a
  matmul, then, if bf16 wins there, the model's own forward pass on a clip, and picks bf16
  only if that is at least ``min_speedup`` times faster. On a CUDA GPU it picks bf16 where the
  GPU supports it (Ampere and later). Losses stay in fp32 either way (the models compute
  log-softmax, the contrastive logits and the perplexities in fp32).
* ``compile_model``: ``torch.compile`` of the encoder (f and g), in place, so the state dict
  and ``save_pretrained`` are unchanged. Dynamic shapes: one compilation serves every length.
* ``default_transcription_batch_size``: windows per forward pass; batching pays on a GPU and
  costs on a CPU (measured 1.39x slower at 8 windows than at 1), where it also holds more memory.
"""

from __future__ import annotations

import logging
import time

import torch

__all__ = ["MIXED_PRECISION_CHOICES", "bf16_matmul_speedup", "choose_mixed_precision", "compile_model", "default_transcription_batch_size"]

logger = logging.getLogger("w2v2.speed")

MIXED_PRECISION_CHOICES = ("auto", "no", "bf16", "fp16")
_matmul_speedups: dict[str, float] = {}


def _best_time(fn, repeats: int) -> float:
    fn()  # warm-up (kernel selection, allocation)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def bf16_matmul_speedup(device: torch.device | str = "cpu", size: int = 512) -> float:
    """fp32 time / bf16 time of a (size x size) @ (size x size) matmul on ``device`` (cached)."""
    device = torch.device(device)
    key = f"{device}:{size}"
    if key not in _matmul_speedups:
        # A private generator: the probe must not move the global stream that a seeded run
        # draws its masks and negatives from ("auto" and "no" give the same run where fp32 wins).
        generator = torch.Generator(device).manual_seed(0)
        a = torch.randn(size, size, device=device, generator=generator)
        b = torch.randn(size, size, device=device, generator=generator)
        a16, b16 = a.bfloat16(), b.bfloat16()
        fp32 = _best_time(lambda: a @ b, repeats=5)
        bf16 = _best_time(lambda: a16 @ b16, repeats=5)
        _matmul_speedups[key] = fp32 / bf16
    return _matmul_speedups[key]


def _forward_speedup(model: torch.nn.Module, samples: int, device: torch.device) -> float:
    """fp32 time / bf16-autocast time of ``model``'s forward pass on one clip of ``samples``."""
    x = 0.1 * torch.randn(1, samples, device=device, generator=torch.Generator(device).manual_seed(0))
    encoder = getattr(model, "wav2vec2", model)
    was_training = encoder.training
    encoder.eval()

    def forward(bf16: bool):
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            encoder(x)

    try:
        fp32 = _best_time(lambda: forward(False), repeats=2)
        bf16 = _best_time(lambda: forward(True), repeats=2)
    finally:
        encoder.train(was_training)
    return fp32 / bf16


def choose_mixed_precision(choice: str, device: torch.device | str, model: torch.nn.Module | None = None, *, samples: int = 32_000, min_speedup: float = 1.2) -> str:
    """Resolve ``choice`` ("auto", "no", "bf16", "fp16") to what to run: "no", "bf16" or "fp16".

    "auto" never picks fp16 (it needs loss scaling and overflows more easily). With ``model``,
    a CPU's choice rests on the model's forward pass over ``samples`` samples; without, on the
    matmul alone.
    """
    if choice not in MIXED_PRECISION_CHOICES:
        raise ValueError(f"mixed_precision={choice!r} is not supported; use one of {', '.join(MIXED_PRECISION_CHOICES)}.")
    if choice != "auto":
        return choice
    device = torch.device(device)
    if device.type == "cuda":
        chosen = "bf16" if torch.cuda.is_bf16_supported() else "no"
        logger.info("mixed_precision auto: %s (%s)", chosen, torch.cuda.get_device_name(device))
        return chosen
    if device.type != "cpu":
        return "no"
    matmul = bf16_matmul_speedup(device)
    if matmul < min_speedup or model is None:
        chosen = "bf16" if matmul >= min_speedup else "no"
        logger.info("mixed_precision auto: %s (bf16 matmul %.2fx the speed of fp32 on this CPU)", chosen, matmul)
        return chosen
    forward = _forward_speedup(model, samples, device)
    chosen = "bf16" if forward >= min_speedup else "no"
    logger.info("mixed_precision auto: %s (bf16 on this CPU: matmul %.2fx, this model's forward %.2fx the speed of fp32)",
                chosen, matmul, forward)
    return chosen


def compile_model(model: torch.nn.Module) -> torch.nn.Module:
    """``torch.compile`` the encoder (``model.wav2vec2``, or ``model`` itself) in place, with
    dynamic shapes; returns ``model``. The first forward pass of each new kind of input
    (training or eval, with or without a mask) compiles, which takes a minute or more on a CPU."""
    encoder = getattr(model, "wav2vec2", model)
    encoder.compile(dynamic=True)
    return model


def default_transcription_batch_size(device: torch.device | str) -> int:
    """Windows per forward pass: 8 on a GPU, 1 on a CPU (see the module docstring)."""
    return 8 if torch.device(device).type == "cuda" else 1
