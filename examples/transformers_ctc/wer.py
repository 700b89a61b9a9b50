"""Word error rate as a local `evaluate` metric module, for transformers' CTC example offline (the
Hub's evaluate-metric/wer cannot be reached): `--eval_metrics examples/transformers_ctc/wer.py`."""
import datasets
import evaluate
import jiwer


class Wer(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="word error rate (jiwer)", citation="", inputs_description="predictions, references",
            features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
        )

    def _compute(self, predictions=None, references=None):
        return jiwer.wer(references, predictions)
