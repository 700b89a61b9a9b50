"""Word and character error rates as an offline ``evaluate`` metric, computed with jiwer.

``evaluate.load("wer")`` downloads its script from the Hub; this file is itself an evaluate
metric script, so ``evaluate.load(path_to_this_file)`` (what :func:`load_wer_cer` does) works
without a network. It imports only datasets, evaluate and jiwer so that evaluate can copy it
into its module cache.

    >>> metric = load_wer_cer()
    >>> metric.compute(predictions=["A CAT"], references=["A HAT"])
    {'wer': 0.5, 'cer': 0.2}
"""

import datasets
import evaluate
import jiwer

__all__ = ["WordCharErrorRate", "load_wer_cer"]

_DESCRIPTION = """\
Word error rate (WER) and character error rate (CER): (substitutions + deletions + insertions)
divided by the number of reference words (characters), pooled over the whole corpus.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): transcriptions to score.
    references (list of str): reference transcriptions, one per prediction.
Returns:
    wer (float): corpus word error rate.
    cer (float): corpus character error rate.
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

    def _compute(self, predictions, references):
        empty = [i for i, ref in enumerate(references) if not ref.strip()]
        if empty:
            raise ValueError(
                f"references {empty[:5]} are empty; WER is undefined for them. Drop utterances with empty transcriptions."
            )
        return {"wer": jiwer.wer(references, predictions), "cer": jiwer.cer(references, predictions)}


def load_wer_cer(**kwargs):
    """``evaluate.load`` this file: an offline WER/CER metric (kwargs go to ``evaluate.load``)."""
    return evaluate.load(__file__, **kwargs)
