"""Word n-gram LMs: built with KenLM's lmplz from text, used by CTC beam search, weights tuned on validation."""

import numpy as np
import pytest

from w2v2.processing import W2V2CTCTokenizer
from w2v2.processing.lm_decoder import NgramCTCDecoder
from w2v2.training.language_model import build_ngram_lm, tune_lm_weights

pytest.importorskip("pyctcdecode")
pytest.importorskip("kenlm")

SENTENCES = ["THE CAT SAT ON THE MAT", "THE DOG SAT ON THE LOG", "A CAT AND A DOG", "THE CAT RAN"] * 5


def _log_probs(tokenizer, text: str, confusions: dict[int, tuple[str, float]]) -> np.ndarray:
    """Frames spelling ``text`` (one character frame, then one blank frame); at character index
    i in ``confusions`` a wrong character takes probability p, more than the right one's."""
    vocab = tokenizer.get_vocab()
    frames = []
    for i, char in enumerate(text.replace(" ", "|")):
        p = np.full(len(vocab), 0.02)
        if i in confusions:
            wrong, share = confusions[i]
            p[vocab[wrong]], p[vocab[char]] = share, 0.9 - share
        else:
            p[vocab[char]] = 0.9
        frames += [p / p.sum(), np.eye(len(vocab))[tokenizer.pad_token_id] * 0.9 + 0.1 / len(vocab)]
    return np.log(np.stack(frames)).astype(np.float32)


@pytest.fixture(scope="module")
def lm_and_tokenizer(tmp_path_factory):
    tokenizer = W2V2CTCTokenizer.from_texts(SENTENCES + ["CUT"])  # U is in the alphabet, CUT is not in the LM's text
    arpa = build_ngram_lm(SENTENCES, tmp_path_factory.mktemp("lm") / "words.arpa", order=3)
    return arpa, tokenizer


def test_lmplz_writes_an_arpa_model_of_the_text(lm_and_tokenizer):
    arpa, _ = lm_and_tokenizer
    text = arpa.read_text()
    assert text.startswith("\\data\\")
    header = dict(line.split("=") for line in text.splitlines()[1:5] if line.startswith("ngram"))
    # 10 distinct words + <s>, </s>, <unk>; trigrams exist
    assert header["ngram 1"] == "13" and int(header["ngram 3"]) > 0
    assert "\tCAT\t" in text and "CUT" not in text


def test_beam_search_with_the_lm_finds_what_greedy_decoding_misses(lm_and_tokenizer):
    arpa, tokenizer = lm_and_tokenizer
    # "THE CAT SAT": the A of CAT (character 5) looks more like U
    log_probs = _log_probs(tokenizer, "THE CAT SAT", {5: ("U", 0.5)})
    greedy = tokenizer.decode(log_probs.argmax(-1).tolist())
    assert greedy == "THE CUT SAT"
    decoder = NgramCTCDecoder(tokenizer, arpa, alpha=1.0, beta=1.0, beam_width=16)
    text, words = decoder(log_probs)
    assert text == "THE CAT SAT"
    assert [w for w, _, _ in words] == ["THE", "CAT", "SAT"]
    assert all(0 <= start < end <= len(log_probs) for _, start, end in words)


def test_tuning_picks_weights_that_lower_validation_wer(lm_and_tokenizer):
    arpa, tokenizer = lm_and_tokenizer
    # the C of CAT looks like M: MAT is a word of the LM too, only the word context tells them apart
    texts = ["THE CAT SAT", "THE CAT RAN", "A CAT AND A DOG"]
    log_probs = [_log_probs(tokenizer, t, {4: ("M", 0.5)}) for t in texts[:2]] + [_log_probs(tokenizer, texts[2], {})]
    decoder = NgramCTCDecoder(tokenizer, arpa, beam_width=16)
    decoder.set_weights(0.0, 0.0)
    assert [decoder(lp)[0] for lp in log_probs[:2]] == ["THE MAT SAT", "THE MAT RAN"]
    best = tune_lm_weights(decoder, log_probs, texts, alphas=(0.0, 1.0), betas=(0.0, 1.0))
    assert best["alpha"] == 1.0 and best["wer"] == 0.0  # alpha 0 keeps both errors: WER 2/11
    assert (decoder.alpha, decoder.beta) == (best["alpha"], best["beta"])
    with pytest.raises(ValueError, match="one reference per utterance"):
        tune_lm_weights(decoder, log_probs, texts[:1])


def test_errors_name_the_value_and_the_fix(tmp_path, lm_and_tokenizer):
    _, tokenizer = lm_and_tokenizer
    with pytest.raises(ValueError, match="order=1"):
        build_ngram_lm(SENTENCES, tmp_path / "lm.arpa", order=1)
    with pytest.raises(ValueError, match="no text"):
        build_ngram_lm(["", "  "], tmp_path / "lm.arpa")
    with pytest.raises(ValueError, match="is not a file"):
        NgramCTCDecoder(tokenizer, tmp_path / "none.arpa")
    assert not (tmp_path / "lm.arpa").exists()
