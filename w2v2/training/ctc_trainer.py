"""transformers' Trainer with wav2vec 2.0's fine-tuning recipe: arguments, trainer, WER/CER.

- :class:`CTCTrainingArguments` is ``TrainingArguments`` with fairseq's base_10m defaults
  (Adam (0.9, 0.98), eps 1e-8, lr 5e-5, 13k updates, tri-stage schedule, validation by WER)
  and three more fields: the tri-stage phases and scales and ``freeze_finetune_updates``.
- :class:`CTCTrainer` builds the tri-stage schedule and the encoder-freeze callback from them.
- :func:`make_compute_metrics` scores greedy CTC transcriptions with the offline WER/CER metric.

Both classes work with transformers' ``Wav2Vec2ForCTC`` as well as ``W2V2ForCTC``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import EvalPrediction, Trainer, TrainingArguments
from transformers.trainer_utils import IntervalStrategy, SaveStrategy

from .callbacks import FreezeEncoderCallback
from .metrics import load_wer_cer
from .schedulers import DEFAULT_FINAL_LR_SCALE, DEFAULT_INIT_LR_SCALE, DEFAULT_PHASE_RATIOS, get_tri_stage_schedule

__all__ = ["CTCTrainingArguments", "CTCTrainer", "make_compute_metrics", "greedy_ids"]

# fairseq base_10m: max_update 13000 of which freeze_finetune_updates 10000
RECIPE_MAX_STEPS = 13_000
RECIPE_FREEZE_FRACTION = 10_000 / 13_000


@dataclass
class CTCTrainingArguments(TrainingArguments):
    """``TrainingArguments`` with fairseq's base_10m recipe as defaults, plus the recipe's own knobs.

    Every standard ``TrainingArguments`` flag still works. ``warmup_steps`` and
    ``lr_scheduler_type`` are ignored while ``tri_stage_schedule`` is on.
    """

    learning_rate: float = field(default=5e-5, metadata={"help": "Peak learning rate (fairseq base_10m: 5e-5)."})
    adam_beta2: float = field(default=0.98, metadata={"help": "Adam beta2 (fairseq: 0.98)."})
    adam_epsilon: float = field(default=1e-8, metadata={"help": "Adam epsilon (fairseq: 1e-8)."})
    max_steps: int = field(default=RECIPE_MAX_STEPS, metadata={"help": "Updates (fairseq base_10m: 13000)."})
    train_sampling_strategy: str = field(
        default="group_by_length",
        metadata={"help": "Batch utterances of similar duration (lengths from length_column_name).",
                  "choices": ["random", "sequential", "group_by_length", "batch_rebalance"]},
    )
    length_column_name: str = field(default="duration", metadata={"help": "Column of precomputed durations."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep raw audio/text for the collator."})
    eval_strategy: IntervalStrategy | str = field(default="steps", metadata={"help": "When to compute validation WER/CER."})
    eval_steps: float | None = field(default=1000, metadata={"help": "Validation interval (fairseq: 1000)."})
    save_strategy: SaveStrategy | str = field(default="steps", metadata={"help": "When to save checkpoints."})
    save_steps: float = field(default=1000, metadata={"help": "Checkpoint interval; a multiple of eval_steps."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept (the best one is never removed)."})
    load_best_model_at_end: bool = field(default=True, metadata={"help": "End with the checkpoint of lowest WER."})
    metric_for_best_model: str | None = field(default="wer", metadata={"help": "Metric that picks the best checkpoint."})
    greater_is_better: bool | None = field(default=False, metadata={"help": "False: lower WER is better."})
    report_to: None | str | list[str] = field(default="none", metadata={"help": "Loggers (tensorboard, ...)."})

    tri_stage_schedule: bool = field(
        default=True, metadata={"help": "Tri-stage LR (warmup / hold / exponential decay) instead of lr_scheduler_type."}
    )
    tri_stage_phase_ratios: list[float] = field(
        default_factory=lambda: list(DEFAULT_PHASE_RATIOS), metadata={"help": "Warmup, hold and decay fractions."}
    )
    init_lr_scale: float = field(default=DEFAULT_INIT_LR_SCALE, metadata={"help": "Warmup starts at this times lr."})
    final_lr_scale: float = field(default=DEFAULT_FINAL_LR_SCALE, metadata={"help": "Decay ends at this times lr."})
    auto_bf16: bool = field(
        default=True,
        metadata={"help": "bf16 autocast where this device runs the model faster (measured when training starts, "
                          "w2v2.training.speed); an explicit --bf16 or --fp16 wins. (TrainingArguments keeps "
                          "mixed_precision for Accelerate's own use.)"},
    )
    encoder_lr_scale: float = field(
        default=1.0,
        metadata={"help": "Learning rate of every parameter outside the CTC head (lm_head), as a fraction of "
                          "learning_rate: below 1 the pretrained layers move more slowly than the new head."},
    )
    freeze_finetune_updates: int | None = field(
        default=None,
        metadata={"help": "Updates that train only the CTC head. Default: 10/13 of max_steps when fine-tuning a "
                          "pretrained model (fairseq base_10m: 10000 of 13000), 0 with --from_scratch."},
    )


    def __post_init__(self):
        super().__post_init__()
        if self.encoder_lr_scale <= 0:
            raise ValueError(f"encoder_lr_scale={self.encoder_lr_scale} must be positive; use freeze_finetune_updates "
                             "to hold the encoder still.")  # fmt: skip


def greedy_ids(logits: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Best path ids per frame, ``(batch, frames)``: keeps only ids for metrics (``preprocess_logits_for_metrics``)."""
    if isinstance(logits, tuple):
        logits = logits[0]
    return logits.argmax(dim=-1)


def make_compute_metrics(tokenizer, metric=None):
    """``compute_metrics`` for Trainer: greedy CTC decoding, then corpus WER and CER.

    Expects the predictions reduced to ids by :func:`greedy_ids`; padding (-100, from labels
    and from concatenating batches) decodes as blank.
    """
    metric = metric if metric is not None else load_wer_cer()

    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        pred_ids = np.asarray(prediction.predictions)
        label_ids = np.asarray(prediction.label_ids)
        predictions = tokenizer.batch_decode(pred_ids)
        references = tokenizer.batch_decode(label_ids, group_tokens=False)
        return metric.compute(predictions=predictions, references=references)

    return compute_metrics


class CTCTrainer(Trainer):
    """``Trainer`` that reads the recipe fields of :class:`CTCTrainingArguments`.

    - ``tri_stage_schedule``: the scheduler is :func:`get_tri_stage_schedule` over the run.
    - ``freeze_finetune_updates`` > 0: adds :class:`FreezeEncoderCallback`.
    - ``encoder_lr_scale`` != 1: parameters outside ``lm_head`` get ``encoder_lr_scale * learning_rate``.
    With plain ``TrainingArguments`` it behaves like ``Trainer``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        freeze = getattr(self.args, "freeze_finetune_updates", None) or 0
        if freeze > 0:
            self.add_callback(FreezeEncoderCallback(freeze))

    def create_optimizer(self, model=None):
        scale = getattr(self.args, "encoder_lr_scale", 1.0)
        if self.optimizer is not None or scale == 1.0:
            return super().create_optimizer(model)
        optimizer = super().create_optimizer(model)
        # Split each of Trainer's groups (weight decay or not) into the head and the rest; the
        # scheduler, built next, scales every group's own lr.
        names = {id(p): n for n, p in (self.model if model is None else model).named_parameters()}
        groups = []
        for group in optimizer.param_groups:
            for is_head in (True, False):
                params = [p for p in group["params"] if names.get(id(p), "").startswith("lm_head") == is_head]
                if params:
                    groups.append({**group, "params": params, "lr": group["lr"] * (1.0 if is_head else scale)})
        optimizer.param_groups.clear()
        for group in groups:
            optimizer.add_param_group(group)
        return optimizer

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        if not getattr(self.args, "tri_stage_schedule", False):
            return super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler is None:
            self.lr_scheduler = get_tri_stage_schedule(
                self.optimizer if optimizer is None else optimizer,
                num_training_steps,
                phase_ratios=self.args.tri_stage_phase_ratios,
                init_lr_scale=self.args.init_lr_scale,
                final_lr_scale=self.args.final_lr_scale,
            )
            self._created_lr_scheduler = True
        return self.lr_scheduler
