"""CTC beam search with a word n-gram LM: pyctcdecode against flashlight-text's lexicon decoder.

    PYTHONPATH=/path/to/flashlight-text .venv/bin/python benchmarks/lm_decoding.py [--sentences 20000] [--utterances 100]

Both decoders get the same KenLM model (a 4-gram of the demo corpus's LM text, ``lm_text.txt``:
the sentence pool less every held-out sentence, built by ``w2v2.training.language_model``) and the
same CTC log-probabilities, made up so that greedy decoding misspells words: each character of a
held-out (validation) sentence takes one 20 ms frame, then a blank frame; with probability
``--confusion`` a wrong character gets p=0.5 against the right one's 0.4, and every frame has some
probability spread over the other tokens. Printed: WER of greedy decoding and of each decoder
(32 beams; at alpha 0.5, beta 1.0 and at the best pair of a small grid, picked on the same
utterances for both), and the real-time factor on this CPU (decoding seconds per second
of audio, one thread, the LM already loaded), as a markdown table.

flashlight-text (``pip install flashlight-text``) is what torchaudio's ``ctc_decoder`` wraps;
torchaudio itself has no build for this torch. Its word decoding needs a lexicon: the LM's
unigrams, each spelled by the vocabulary's characters and ended by the word delimiter.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from w2v2 import W2V2CTCTokenizer
from w2v2.data.text import load_sentences
from w2v2.processing.lm_decoder import NgramCTCDecoder
from w2v2.training.language_model import build_lm_folder
from w2v2.training.metrics import load_wer_cer

SECONDS_PER_FRAME = 320 / 16_000  # 0.02


def make_log_probs(tokenizer, text: str, rng: np.random.Generator, confusion: float) -> np.ndarray:
    """(2 * len(text), V) log-probabilities: a character frame then a blank frame per character."""
    vocab = tokenizer.get_vocab()
    letters = [t for t in vocab if len(t) == 1 and t.isalpha()]
    size, frames = len(vocab), []
    for char in text.replace(" ", tokenizer.word_delimiter_token):
        p = rng.dirichlet(np.ones(size)) * 0.1
        if char.isalpha() and rng.random() < confusion:
            p[vocab[rng.choice([c for c in letters if c != char])]] += 0.5
            p[vocab[char]] += 0.4
        else:
            p[vocab[char]] += 0.9
        blank = rng.dirichlet(np.ones(size)) * 0.1
        blank[tokenizer.pad_token_id] += 0.9
        frames += [p, blank]
    return np.log(np.stack(frames)).astype(np.float32)


class FlashlightDecoder:
    """flashlight-text's LexiconDecoder over a KenLM word model (as torchaudio's ctc_decoder builds it)."""

    def __init__(self, tokenizer, lm_file: Path, unigrams: list[str], *, alpha: float, beta: float, beam_width: int):
        from flashlight.lib.text.decoder import (CriterionType, KenLM, LexiconDecoder, LexiconDecoderOptions, SmearingMode,
                                                 Trie)  # fmt: skip
        from flashlight.lib.text.dictionary import Dictionary

        vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
        self.tokens = [token for token, _ in vocab]
        self.words = Dictionary(unigrams + ["<unk>"])
        self.lm = KenLM(str(lm_file), self.words)
        sil = tokenizer.word_delimiter_token_id
        trie = Trie(len(self.tokens), sil)
        start = self.lm.start(False)
        token_id = tokenizer.get_vocab()
        for index, word in enumerate(unigrams):
            if all(c in token_id for c in word):
                _, score = self.lm.score(start, index)
                trie.insert([token_id[c] for c in word] + [sil], index, score)
        trie.smear(SmearingMode.MAX)
        options = LexiconDecoderOptions(beam_size=beam_width, beam_size_token=len(self.tokens), beam_threshold=25.0,
                                        lm_weight=alpha, word_score=beta, unk_score=float("-inf"), sil_score=0.0,
                                        log_add=False, criterion_type=CriterionType.CTC)  # fmt: skip
        self.decoder = LexiconDecoder(options, trie, self.lm, sil, tokenizer.pad_token_id, self.words.get_index("<unk>"), [], False)

    def __call__(self, log_probs: np.ndarray) -> str:
        emissions = np.ascontiguousarray(log_probs, dtype=np.float32)
        best = self.decoder.decode(emissions.ctypes.data, *emissions.shape)[0]
        return " ".join(self.words.get_entry(w) for w in best.words if w >= 0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=20_000, help="LM text: this many pool sentences")
    parser.add_argument("--utterances", type=int, default=100, help="validation sentences decoded")
    parser.add_argument("--confusion", type=float, default=0.08, help="share of characters misread by the 'model'")
    parser.add_argument("--order", type=int, default=4)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    parser.add_argument("--betas", type=float, nargs="+", default=[0.0, 1.0, 2.0])
    args = parser.parse_args(argv)

    pool = load_sentences()
    text = [s.transcription for s in pool["train"][: args.sentences]]
    references = [s.transcription for s in pool["validation"][: args.utterances]]
    tokenizer = W2V2CTCTokenizer.from_texts(text + references)
    rng = np.random.default_rng(0)
    log_probs = [make_log_probs(tokenizer, r, rng, args.confusion) for r in references]
    audio_s = sum(len(lp) for lp in log_probs) * SECONDS_PER_FRAME
    metric = load_wer_cer()
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "text.txt").write_text("\n".join(text) + "\n")
        start = time.perf_counter()
        build_lm_folder([Path(work) / "text.txt"], Path(work) / "lm", order=args.order, tokenizer=tokenizer)
        built_s = time.perf_counter() - start
        unigrams = (Path(work) / "lm" / "unigrams.txt").read_text().split()
        def pyctcdecode(alpha, beta):
            decoder = NgramCTCDecoder(tokenizer, Path(work) / "lm", alpha=alpha, beta=beta, beam_width=32)
            return lambda lp: decoder(lp)[0]

        def flashlight(alpha, beta):
            return FlashlightDecoder(tokenizer, Path(work) / "lm" / "lm.bin", unigrams, alpha=alpha, beta=beta, beam_width=32)

        factories = {"pyctcdecode 0.5.0": pyctcdecode, "flashlight-text 0.0.7 (LexiconDecoder)": flashlight}
        try:
            import flashlight.lib.text  # noqa: F401
        except ImportError as error:
            print(f"flashlight-text not importable ({error}): pyctcdecode only")
            factories.pop("flashlight-text 0.0.7 (LexiconDecoder)")
        rows = [("greedy", tokenizer.batch_decode([lp.argmax(-1) for lp in log_probs]), 0.0)]
        for name, factory in factories.items():
            # the two scale the LM score differently: each at alpha 0.5 / beta 1.0 and at its best of a grid
            best = None
            for alpha, beta in [(0.5, 1.0)] + [(a, b) for a in args.alphas for b in args.betas]:
                decode = factory(alpha, beta)
                decode(log_probs[0])  # warm up
                start = time.perf_counter()
                hypotheses = [decode(lp) for lp in log_probs]
                row = (f"{name}, alpha {alpha}, beta {beta}", hypotheses, time.perf_counter() - start)
                if (alpha, beta) == (0.5, 1.0) and not best:
                    rows.append(row)
                wer = metric.compute(predictions=hypotheses, references=references)["wer"]
                if best is None or wer < best[0]:
                    best = (wer, row)
            rows.append((best[1][0] + " (best of grid)", *best[1][1:]))
    print(f"LM: {args.order}-gram of {len(text)} sentences, {len(unigrams)} words, built in {built_s:.1f} s; "
          f"{len(references)} utterances, {audio_s:.0f} s of frames, {args.confusion:.0%} of characters misread")
    print("\n| decoding | WER | CER | utterances right | RTF (CPU, 1 thread) |\n|---|---|---|---|---|")
    for name, hypotheses, seconds in rows:
        scores = metric.compute(predictions=hypotheses, references=references)
        right = sum(h == r for h, r in zip(hypotheses, references))
        rtf = f"{seconds / audio_s:.4f}" if seconds else "-"
        print(f"| {name} | {scores['wer']:.3f} | {scores['cer']:.3f} | {right}/{len(references)} | {rtf} |")


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    main()
