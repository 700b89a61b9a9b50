"""Word, character and phone error rates as an offline ``evaluate`` metric, computed with jiwer.

``evaluate.load("wer")`` downloads its script from the Hub; this file is itself an evaluate
metric script, so ``evaluate.load(path_to_this_file)`` (what :func:`load_wer_cer` does) works
without a network. It imports only datasets, evaluate and jiwer so that evaluate can copy it
into its module cache.

    >>> metric = load_wer_cer()
    >>> metric.compute(predictions=["A CAT"], references=["A HAT"])
    {'wer': 0.5, 'cer': 0.2}

Texts of space-separated symbols (a symbol-mode tokenizer's, e.g. phones) also get the phone
error rate, the edit distance over symbol sequences divided by the number of reference symbols
(``oʊ`` is one symbol); word-delimiter symbols are left out of it:

    >>> metric.compute(predictions=["h ə l oʊ"], references=["h ɛ l oʊ | w"], symbols=True, word_delimiter="|")
    {'wer': 0.5, 'cer': 0.416..., 'per': 0.4}
"""

import datasets
import evaluate
import jiwer

__all__ = ["WordCharErrorRate", "load_wer_cer", "phone_error_rate"]

_DESCRIPTION = """\
Word error rate (WER) and character error rate (CER): (substitutions + deletions + insertions)
divided by the number of reference words (characters), pooled over the whole corpus; with
symbols=True also the phone error rate (PER), the same over space-separated symbols.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): transcriptions to score.
    references (list of str): reference transcriptions, one per prediction.
    symbols (bool): the texts are space-separated symbols (phones): also return per.
    word_delimiter (str, optional): with symbols, the word-delimiter symbol, left out of per.
Returns:
    wer (float): corpus word error rate.
    cer (float): corpus character error rate.
    per (float): with symbols=True, corpus phone (symbol) error rate.
"""


class WordCharErrorRate(evaluate.Metric):
    """WER and CER in one pass; references must be non-empty strings."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            reference_urls=["https://github.com/jitsi/jiwer"],
        )

    def _compute(self, predictions, references, symbols=False, word_delimiter=None):
        empty = [i for i, ref in enumerate(references) if not ref.strip()]
        if empty:
            raise ValueError(
                f"references {empty[:5]} are empty; WER is undefined for them. Drop utterances with empty transcriptions."
            )
        scores = {"wer": jiwer.wer(references, predictions), "cer": jiwer.cer(references, predictions)}
        if symbols:
            scores["per"] = phone_error_rate(predictions, references, word_delimiter=word_delimiter)
        return scores


def phone_error_rate(predictions, references, word_delimiter=None):
    """Corpus PER: (substitutions + deletions + insertions) over symbol sequences, divided by the
    number of reference symbols; texts are symbols separated by spaces, and ``word_delimiter``
    symbols (e.g. ``"|"``) are left out first."""
    def symbols_of(text):
        return " ".join(s for s in text.split() if s != word_delimiter)

    references = [symbols_of(r) for r in references]
    empty = [i for i, ref in enumerate(references) if not ref]
    if empty:
        raise ValueError(f"references {empty[:5]} hold no symbol besides word delimiters; PER is undefined for them. "
                         "Drop those utterances.")  # fmt: skip
    # jiwer's word error rate over space-separated tokens is the symbol error rate
    return jiwer.wer(references, [symbols_of(p) for p in predictions])


def load_wer_cer(**kwargs):
    """``evaluate.load`` this file: an offline WER/CER metric (kwargs go to ``evaluate.load``)."""
    return evaluate.load(__file__, **kwargs)
