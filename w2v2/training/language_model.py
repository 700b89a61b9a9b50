"""Word n-gram language models for CTC beam search: build one from text, decode with it, tune it.

- :func:`build_ngram_lm` writes an ARPA model with KenLM's ``lmplz`` (modified Kneser-Ney
  smoothing; ``scripts/setup.sh`` compiles KenLM's tools into ``.venv/bin``).
- :class:`NgramCTCDecoder` is beam search over CTC log-probabilities with that LM (pyctcdecode
  + kenlm): ``log_probs (T, V) -> (text, [(word, start_frame, end_frame)])``. The score of a
  hypothesis W is log P_ctc(W | X) + alpha log P_lm(W) + beta |W| (the paper's decoding, sec. 4.3).
- :func:`tune_lm_weights` picks alpha and beta by WER on a validation split, as the paper does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .metrics import load_wer_cer

__all__ = ["build_ngram_lm", "find_kenlm_tool", "NgramCTCDecoder", "tune_lm_weights"]


def find_kenlm_tool(name: str = "lmplz") -> Path:
    """The path of KenLM's ``name`` binary: next to this Python (``.venv/bin``) or on PATH."""
    beside = Path(sys.executable).parent / name
    found = beside if beside.is_file() and os.access(beside, os.X_OK) else shutil.which(name)
    if not found:
        raise ValueError(f"KenLM's {name} is not installed (not in {beside.parent} nor on PATH); run "
                         "scripts/setup.sh, which compiles it, or put a KenLM build's bin/ on PATH.")  # fmt: skip
    return Path(found)


def build_ngram_lm(texts: Iterable[str], path: str | os.PathLike, *, order: int = 3, memory: str = "10%") -> Path:
    """Write an ARPA ``order``-gram model of ``texts`` (one sentence each) to ``path``; returns it.

    Sentences must already be normalised as the tokenizer's vocabulary expects (same case,
    no punctuation the vocabulary lacks). The file is written whole or not at all.
    """
    if order < 2:
        raise ValueError(f"order={order}: an n-gram LM for beam search needs order >= 2 (3 or 4 is usual).")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [" ".join(t.split()) for t in texts]
    lines = [line for line in lines if line]
    if not lines:
        raise ValueError("no text to build a language model from: every sentence given was empty.")
    with tempfile.TemporaryDirectory(dir=path.parent) as work:
        partial = Path(work) / path.name
        with open(partial, "w") as arpa:
            # --discount_fallback: small corpora lack the counts-of-counts modified Kneser-Ney needs
            run = subprocess.run([str(find_kenlm_tool("lmplz")), "-o", str(order), "--discount_fallback", "-S", memory, "-T", work],
                                 input="\n".join(lines) + "\n", stdout=arpa, stderr=subprocess.PIPE, text=True)  # fmt: skip
        if run.returncode != 0:
            raise ValueError(f"lmplz failed (exit {run.returncode}) on {len(lines)} sentences: {run.stderr.strip().splitlines()[-1:]}")
        os.replace(partial, path)
    return path


class NgramCTCDecoder:
    """CTC beam search with a word n-gram LM over a ``W2V2CTCTokenizer``'s vocabulary.

    The decoder's alphabet is the vocabulary in id order: the blank (``<pad>``) becomes ``""``,
    the word delimiter ``" "`` and ``<unk>`` ``"⁇"``; the LM's words must be written in the
    vocabulary's case. Calling it decodes one utterance's ``(T, V)`` log-probabilities.
    """

    def __init__(self, tokenizer, lm_path: str | os.PathLike, *, alpha: float = 0.5, beta: float = 1.0, beam_width: int = 32):
        try:
            from pyctcdecode import build_ctcdecoder
        except ImportError as error:
            raise ValueError("LM decoding needs pyctcdecode and kenlm: pip install 'w2v2[lm]' (or decode greedily).") from error
        if not Path(lm_path).is_file():
            raise ValueError(f"lm={str(lm_path)!r} is not a file; pass an ARPA or kenlm binary n-gram model.")
        if beam_width < 1:
            raise ValueError(f"beam_width={beam_width} must be >= 1.")
        vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
        special = {tokenizer.pad_token: "", tokenizer.word_delimiter_token: " ", tokenizer.unk_token: "⁇"}
        labels = [special.get(token, token) for token, _ in vocab]
        self._decoder = build_ctcdecoder(labels, kenlm_model_path=str(lm_path), alpha=alpha, beta=beta)
        self.alpha, self.beta, self.beam_width = alpha, beta, beam_width

    def set_weights(self, alpha: float, beta: float) -> None:
        """The LM weight alpha and the word insertion bonus beta."""
        self._decoder.reset_params(alpha=alpha, beta=beta)
        self.alpha, self.beta = alpha, beta

    def __call__(self, log_probs: np.ndarray) -> tuple[str, list[tuple[str, int, int]]]:
        if not len(log_probs):
            return "", []
        text, _, word_frames, _, _ = self._decoder.decode_beams(log_probs, beam_width=self.beam_width)[0]
        return text, [(word, start, end) for word, (start, end) in word_frames]


def tune_lm_weights(
    decoder: NgramCTCDecoder, log_probs: Sequence[np.ndarray], references: Sequence[str], *,
    alphas: Sequence[float] = (0.3, 0.6, 1.0, 1.5), betas: Sequence[float] = (0.0, 1.0, 2.0, 3.0),
) -> dict[str, float]:  # fmt: skip
    """Grid search of (alpha, beta) by WER on a validation split; leaves ``decoder`` at the best.

    Returns ``{"alpha", "beta", "wer", "cer"}`` of the best pair (ties: the first, i.e. lowest alpha/beta).
    """
    if len(log_probs) != len(references) or not references:
        raise ValueError(f"need one reference per utterance and at least one: {len(log_probs)} log-prob arrays, {len(references)} references.")
    metric = load_wer_cer()
    best = None
    for alpha in alphas:
        for beta in betas:
            decoder.set_weights(alpha, beta)
            scores = metric.compute(predictions=[decoder(lp)[0] for lp in log_probs], references=list(references))
            if best is None or scores["wer"] < best["wer"]:
                best = {"alpha": alpha, "beta": beta, **scores}
    decoder.set_weights(best["alpha"], best["beta"])
    return best
