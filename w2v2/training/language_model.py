"""Word n-gram language models for CTC beam search: build one from text, decode with it, tune it.

- :func:`build_ngram_lm` writes an ARPA model with KenLM's ``lmplz`` (modified Kneser-Ney
  smoothing; ``scripts/setup.sh`` compiles KenLM's tools into ``.venv/bin``).
- decoding with it is ``w2v2.processing.lm_decoder.NgramCTCDecoder`` (CTC beam search, pyctcdecode).
- :func:`tune_lm_weights` picks alpha and beta by WER on a validation split, as the paper does.
- :func:`build_lm_folder` (``w2v2-build-lm``) writes a folder a decoder loads: the ARPA model,
  KenLM's binary form, the unigram list and the decoding weights (``attrs.json``), from text
  normalised as the tokenizer's vocabulary expects.

Folders. An LM folder (:data:`LM_FILES`) holds ``lm.arpa``, ``lm.bin`` (when ``build_binary`` is
installed), ``unigrams.txt``, ``attrs.json`` (``alpha``, ``beta``, ``unk_score_offset``,
``score_boundary``: pyctcdecode's names) and ``build.json`` (what was built from what). A model
folder carries its LM as pyctcdecode's ``save_to_dir`` lays it out, which transformers' ASR
pipeline loads by itself: ``alphabet.json`` beside the model and ``language_model/`` with
exactly three files (``attrs.json``, ``unigrams.txt`` and one KenLM model, the binary when there
is one); :meth:`NgramCTCDecoder.save` writes that.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..layout import MODEL_LM_DIR
from ..processing.lm_decoder import ARPA_FILE, ATTRS_FILE, BINARY_FILE, DEFAULT_WEIGHTS, UNIGRAMS_FILE, NgramCTCDecoder
from .metrics import load_wer_cer

__all__ = [
    "build_ngram_lm", "build_lm_folder", "find_kenlm_tool", "tune_lm_weights", "split_log_probs", "write_lm_weights",
    "LM_FILES",
]  # fmt: skip

BUILD_FILE = "build.json"
LM_FILES = (ARPA_FILE, BINARY_FILE, UNIGRAMS_FILE, ATTRS_FILE, BUILD_FILE)  # what build_lm_folder writes


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


def split_log_probs(model, tokenizer_or_processor, dataset, *, audio_column: str = "audio", text_column: str = "transcription",
                    chars_to_ignore: str | None = None) -> tuple[list[np.ndarray], list[str]]:  # fmt: skip
    """CTC log-probabilities ``(T, V)`` of every utterance of ``dataset`` (one at a time, so that
    padding never changes a group-norm model's outputs) and its references, written as the
    Trainer's WER sees them (the labels decoded: case-folded, unknown characters as ``<unk>``)."""
    import torch

    from ..processing.audio import load_audio
    from .collators import DEFAULT_CHARS_TO_IGNORE, normalize_transcript

    processor = tokenizer_or_processor
    rate = processor.feature_extractor.sampling_rate
    chars_to_ignore = DEFAULT_CHARS_TO_IGNORE if chars_to_ignore is None else chars_to_ignore
    device = next(model.parameters()).device
    model.eval()
    log_probs, references = [], []
    for row in dataset:
        audio = row[audio_column]
        if isinstance(audio, dict) and "array" not in audio:
            audio = load_audio(audio, rate)
        inputs = processor.feature_extractor(audio, sampling_rate=rate, return_tensors="pt")
        with torch.no_grad():
            logits = model(**{k: v.to(device) for k, v in inputs.items()}).logits[0].float()  # (T, V)
        log_probs.append(torch.log_softmax(logits, -1).cpu().numpy())
        ids = processor.tokenizer(normalize_transcript(row[text_column], chars_to_ignore)).input_ids
        references.append(processor.tokenizer.decode(ids, group_tokens=False))
    return log_probs, references


def _check_out_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"out={str(out)!r} is a file; pass a folder for the LM's files.")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in LM_FILES) if out.is_dir() else []
    if foreign:
        raise ValueError(f"out={str(out)!r} holds files w2v2-build-lm did not write ({', '.join(foreign[:5])}); "
                         "choose a new or empty folder.")  # fmt: skip


def _read_text_files(paths: Sequence[str | os.PathLike]) -> list[str]:
    if not paths:
        raise ValueError("no text files given; pass --text FILE [FILE ...], one sentence per line.")
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise ValueError(f"text file(s) {', '.join(missing)} do not exist; pass files of one sentence per line.")
    return [line for p in paths for line in Path(p).read_text(encoding="utf-8").splitlines()]


def _arpa_unigrams(arpa: Path) -> list[str]:
    """The words of an ARPA model's 1-gram section, without <s>, </s> and <unk>."""
    words, inside = [], False
    with open(arpa, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line == "\\1-grams:":
                inside = True
            elif inside and (line.startswith("\\") or not line):
                break
            elif inside:
                word = line.split("\t")[1]
                if word not in ("<s>", "</s>", "<unk>"):
                    words.append(word)
    return words


def _vocabulary_case(tokenizer) -> str | None:
    """"upper" or "lower" when every letter of the vocabulary has that case (text is folded to it), else None."""
    letters = [token for token in tokenizer.get_vocab() if len(token) == 1 and token.isalpha() and token.lower() != token.upper()]
    if letters and all(c.isupper() for c in letters):
        return "upper"
    if letters and all(c.islower() for c in letters):
        return "lower"
    return None


def build_lm_folder(text_files: Sequence[str | os.PathLike], out: str | os.PathLike, *, order: int = 4, tokenizer=None,
                    chars_to_ignore: str | None = None) -> dict:  # fmt: skip
    """``w2v2-build-lm``: an LM folder (module docstring) from text files of one sentence a line.

    Lines are normalised as the fine-tuning collator normalises transcripts
    (``normalize_transcript``: punctuation in ``chars_to_ignore`` dropped, spaces squeezed) and,
    with a ``tokenizer``, case-folded as it encodes (or to the case of its vocabulary's letters,
    when they all have one: the LM's words must be spelled as the decoder spells); characters outside its vocabulary are
    counted (the decoder can never spell the words holding them). ``out`` must be new, empty
    or an earlier LM folder. Returns the report also written to ``build.json``.
    """
    from .collators import DEFAULT_CHARS_TO_IGNORE, normalize_transcript

    if order < 2:
        raise ValueError(f"order={order}: an n-gram LM for beam search needs order >= 2 (3 or 4 is usual).")
    out = Path(out)
    _check_out_folder(out)
    chars_to_ignore = DEFAULT_CHARS_TO_IGNORE if chars_to_ignore is None else chars_to_ignore
    lines = [normalize_transcript(line, chars_to_ignore) for line in _read_text_files(text_files)]
    if tokenizer is not None:
        case = _vocabulary_case(tokenizer)
        lines = [tokenizer.normalize_text(line) for line in lines]
        lines = [line.upper() if case == "upper" else line.lower() if case == "lower" else line for line in lines]
    lines = [line for line in lines if line]
    if not lines:
        raise ValueError(f"no text in {', '.join(map(str, text_files))}: every line is empty after normalisation; "
                         "pass files of one sentence per line.")  # fmt: skip
    outside: dict[str, int] = {}
    if tokenizer is not None:
        vocab = set(tokenizer.get_vocab())
        for line in lines:
            for char in line:
                if char != " " and char not in vocab:
                    outside[char] = outside.get(char, 0) + 1
    out.mkdir(parents=True, exist_ok=True)
    arpa = build_ngram_lm(lines, out / ARPA_FILE, order=order)
    try:
        binary_tool = find_kenlm_tool("build_binary")
    except ValueError:
        binary_tool = None
    if binary_tool is not None:
        run = subprocess.run([str(binary_tool), str(arpa), str(out / BINARY_FILE)], capture_output=True, text=True)
        if run.returncode != 0:
            raise ValueError(f"build_binary failed (exit {run.returncode}) on {arpa}: {run.stderr.strip().splitlines()[-1:]}")
    elif (out / BINARY_FILE).exists():
        (out / BINARY_FILE).unlink()  # an earlier build's: it would not match the new ARPA
    unigrams = _arpa_unigrams(arpa)
    (out / UNIGRAMS_FILE).write_text("".join(word + "\n" for word in sorted(unigrams)), encoding="utf-8")
    (out / ATTRS_FILE).write_text(json.dumps(DEFAULT_WEIGHTS, indent=1) + "\n")
    report = {
        "order": order, "sentences": len(lines), "words": sum(line.count(" ") + 1 for line in lines),
        "unigrams": len(unigrams), "binary": binary_tool is not None, "text_files": [str(p) for p in text_files],
        "characters_outside_vocabulary": dict(sorted(outside.items(), key=lambda item: -item[1])) if tokenizer is not None else None,
    }  # fmt: skip
    (out / BUILD_FILE).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return report


def write_lm_weights(lm_folder: str | os.PathLike, alpha: float, beta: float) -> Path:
    """Store tuned ``alpha``/``beta`` in an LM folder's (or a model folder's ``language_model/``) ``attrs.json``."""
    folder = Path(lm_folder)
    if (folder / MODEL_LM_DIR).is_dir():
        folder = folder / MODEL_LM_DIR
    path = folder / ATTRS_FILE
    attrs = dict(DEFAULT_WEIGHTS)
    if path.is_file():
        attrs.update(json.loads(path.read_text()))
    attrs.update(alpha=float(alpha), beta=float(beta))
    path.write_text(json.dumps(attrs, indent=1) + "\n")
    return path
