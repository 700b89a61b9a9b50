"""CTC beam search with a word n-gram LM: :class:`NgramCTCDecoder` (pyctcdecode + kenlm),
``log_probs (T, V) -> (text, [(word, start_frame, end_frame)])``. The score of a hypothesis W is
log P_ctc(W | X) + alpha log P_lm(W) + beta |W| (the paper's decoding, sec. 4.3).

It reads an ARPA or kenlm binary file, an LM folder written by ``w2v2-build-lm``
(``w2v2.training.language_model``: ``lm.bin``/``lm.arpa``, ``unigrams.txt``, ``attrs.json`` with
pyctcdecode's weight names) or a model folder holding ``language_model/``, which
:meth:`NgramCTCDecoder.save` writes in pyctcdecode's layout (what transformers' ASR pipeline loads).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..layout import ALPHABET_FILE, MODEL_LM_DIR

__all__ = ["NgramCTCDecoder"]

ARPA_FILE, BINARY_FILE, UNIGRAMS_FILE, ATTRS_FILE = "lm.arpa", "lm.bin", "unigrams.txt", "attrs.json"  # an LM folder's
KENLM_SUFFIXES = (".bin", ".binary", ".arpa")  # the suffixes pyctcdecode accepts, preferred first
DEFAULT_ALPHA, DEFAULT_BETA = 0.5, 1.0
# pyctcdecode's defaults for the other two weights: log-prob offset of words outside the unigrams,
# and scoring the sentence boundaries <s> and </s>
DEFAULT_ATTRS = {"unk_score_offset": -10.0, "score_boundary": True}
DEFAULT_WEIGHTS = {"alpha": DEFAULT_ALPHA, "beta": DEFAULT_BETA, **DEFAULT_ATTRS}  # an attrs.json of a fresh LM


def _lm_parts(lm: str | os.PathLike) -> tuple[Path, list[str] | None, dict]:
    """``(kenlm model file, unigrams or None, attrs)`` of an ARPA/binary file, an LM folder
    (:func:`build_lm_folder`) or a model folder holding ``language_model/``."""
    lm = Path(lm)
    if lm.is_dir() and (lm / MODEL_LM_DIR).is_dir():
        lm = lm / MODEL_LM_DIR
    if lm.is_file():
        return lm, None, dict(DEFAULT_WEIGHTS)
    if not lm.is_dir():
        raise ValueError(f"lm={str(lm)!r} is not a file; pass an ARPA or kenlm binary n-gram model, or a w2v2-build-lm folder.")
    models = [lm / BINARY_FILE] if (lm / BINARY_FILE).is_file() else []
    models += sorted(p for suffix in KENLM_SUFFIXES for p in lm.glob(f"*{suffix}") if p.name != BINARY_FILE)
    if not models or not (lm / UNIGRAMS_FILE).is_file():
        raise ValueError(f"lm={str(lm)!r} is a folder without a kenlm model (*.bin, *.arpa) and {UNIGRAMS_FILE}; "
                         "write one with w2v2-build-lm --text FILE --out DIR.")  # fmt: skip
    attrs = dict(DEFAULT_WEIGHTS)
    if (lm / ATTRS_FILE).is_file():
        attrs.update(json.loads((lm / ATTRS_FILE).read_text()))
    return models[0], (lm / UNIGRAMS_FILE).read_text(encoding="utf-8").split(), attrs


class NgramCTCDecoder:
    """CTC beam search with a word n-gram LM over a ``W2V2CTCTokenizer``'s vocabulary.

    The decoder's alphabet is the vocabulary in id order: the blank (``<pad>``) becomes ``""``,
    the word delimiter ``" "`` and ``<unk>`` ``"⁇"``; the LM's words must be written in the
    vocabulary's case. Calling it decodes one utterance's ``(T, V)`` log-probabilities.

    Args:
        tokenizer: the model's ``W2V2CTCTokenizer``.
        lm: an ARPA or kenlm binary file, a ``w2v2-build-lm`` folder, or a model folder
            (or its ``language_model/``) saved by :meth:`save`.
        alpha, beta: LM weight and word insertion bonus; None: the folder's ``attrs.json``
            (0.5 and 1.0 for a bare file).
        beam_width: beams kept at each frame.
    """

    def __init__(self, tokenizer, lm: str | os.PathLike, *, alpha: float | None = None, beta: float | None = None,
                 beam_width: int = 32):  # fmt: skip
        try:
            from pyctcdecode import build_ctcdecoder
        except ImportError as error:
            raise ValueError("LM decoding needs pyctcdecode and kenlm: pip install 'w2v2[lm]' (or decode greedily).") from error
        if beam_width < 1:
            raise ValueError(f"beam_width={beam_width} must be >= 1.")
        self.lm_file, unigrams, attrs = _lm_parts(lm)
        alpha = float(attrs["alpha"] if alpha is None else alpha)
        beta = float(attrs["beta"] if beta is None else beta)
        vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
        special = {tokenizer.pad_token: "", tokenizer.word_delimiter_token: " ", tokenizer.unk_token: "⁇"}
        labels = [special.get(token, token) for token, _ in vocab]
        self._decoder = build_ctcdecoder(labels, kenlm_model_path=str(self.lm_file), unigrams=unigrams, alpha=alpha, beta=beta,
                                         unk_score_offset=attrs["unk_score_offset"], lm_score_boundary=attrs["score_boundary"])  # fmt: skip
        self.alpha, self.beta, self.beam_width = alpha, beta, beam_width

    @property
    def beam_search(self):
        """The ``pyctcdecode.BeamSearchDecoderCTC`` underneath (what transformers' pipeline takes as ``decoder=``)."""
        return self._decoder

    def set_weights(self, alpha: float, beta: float) -> None:
        """The LM weight alpha and the word insertion bonus beta."""
        alpha, beta = float(alpha), float(beta)  # pyctcdecode refuses ints
        self._decoder.reset_params(alpha=alpha, beta=beta)
        self.alpha, self.beta = alpha, beta

    def __call__(self, log_probs: np.ndarray) -> tuple[str, list[tuple[str, int, int]]]:
        """``log_probs (T, V)`` (logits work too: they are log-softmaxed) -> ``(text, [(word, start_frame, end_frame)])``."""
        if not len(log_probs):
            return "", []
        text, _, word_frames, _, _ = self._decoder.decode_beams(np.asarray(log_probs, dtype=np.float32),
                                                                beam_width=self.beam_width)[0]  # fmt: skip
        return text, [(word, start, end) for word, (start, end) in word_frames]

    def save(self, model_dir: str | os.PathLike) -> Path:
        """Write ``model_dir/alphabet.json`` and ``model_dir/language_model/`` (replacing an earlier one),
        with the current alpha and beta; returns the ``language_model/`` folder."""
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        target = model_dir / MODEL_LM_DIR
        with tempfile.TemporaryDirectory(dir=model_dir) as work:
            self._decoder.save_to_dir(work)  # alphabet.json + language_model/{attrs.json, unigrams.txt, <kenlm file>}
            if target.exists():
                shutil.rmtree(target)
            os.replace(Path(work) / MODEL_LM_DIR, target)
            os.replace(Path(work) / ALPHABET_FILE, model_dir / ALPHABET_FILE)
        return target
