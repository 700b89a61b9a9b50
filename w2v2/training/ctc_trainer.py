"""transformers' Trainer with wav2vec 2.0's fine-tuning recipe: arguments, trainer, WER/CER.

- :class:`CTCTrainingArguments` is ``TrainingArguments`` with fairseq's base_10m defaults
  (Adam (0.9, 0.98), eps 1e-8, lr 5e-5, 13k updates, tri-stage schedule, validation by WER)
  and more fields: the tri-stage phases and scales, ``freeze_finetune_updates`` and the learning-rate
  fractions of the encoder (``encoder_lr_scale``) and of f: X -> Z (``feature_encoder_lr_scale``).
- :class:`CTCTrainer` builds the tri-stage schedule, the encoder-freeze callback and the lr groups from them.
- :func:`make_compute_metrics` scores greedy CTC transcriptions with the offline WER/CER metric
  (and PER for a symbol tokenizer).

A run killed anywhere and resumed from its newest checkpoint ends bit-identical to one never
interrupted (issue 15, item 13). transformers' Trainer restores the RNG states only once the
resumed epoch's iteration has begun, and its ``group_by_length`` sampler shuffles from the
global RNG at that moment, so a run resumed mid-epoch drew other batches;
:class:`EpochSeededLengthGroupedSampler` shuffles from ``(seed, epoch)`` alone. Each checkpoint
also gets a completion marker with checksums (written after every file; the rotation waits
for it) and ``w2v2_run_state.json``: the loss summed over every update so far, so that
``train_loss`` averages the whole run, the counts below, and the mixed precision the run
chose.

What the collator leaves out or warns about is counted in every training log (and in
``trainer_state.json``'s ``log_history``): ``files_skipped``, the undecodable, missing or NaN
files left out of their batch (issue 15, item 6), and ``labels_too_long``, the utterances
whose label needs more frames than their audio has (item 9; the collator names each file in a
warning). The counts travel with their batch, so they are right with dataloader workers too.

Both classes work with transformers' ``Wav2Vec2ForCTC`` as well as ``W2V2ForCTC``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import EvalPrediction, Trainer, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, IntervalStrategy, SaveStrategy, TrainOutput, rotate_checkpoints

from .callbacks import FreezeEncoderCallback
from .checkpointing import FINETUNE_MARKER, mark_complete
from .metrics import load_wer_cer
from .schedulers import DEFAULT_FINAL_LR_SCALE, DEFAULT_INIT_LR_SCALE, DEFAULT_PHASE_RATIOS, get_tri_stage_schedule

__all__ = ["CTCTrainingArguments", "CTCTrainer", "EpochSeededLengthGroupedSampler", "make_compute_metrics", "greedy_ids",
           "read_run_state", "RUN_STATE", "symbol_metric_kwargs"]

# fairseq base_10m: max_update 13000 of which freeze_finetune_updates 10000
RECIPE_MAX_STEPS = 13_000
RECIPE_FREEZE_FRACTION = 10_000 / 13_000
# f: X -> Z's parameters in W2V2ForCTC, as in transformers' Wav2Vec2ForCTC
FEATURE_ENCODER_PREFIX = "wav2vec2.feature_extractor."
RUN_STATE = "w2v2_run_state.json"  # in every checkpoint folder, next to trainer_state.json
_COUNTS = "_w2v2_counts"  # batch key from _CountingCollator to training_step, never given to the model
# count in the training log -> the collator's list it counts (DataCollatorCTCWithPadding)
COUNTED = {"files_skipped": "skipped", "labels_too_long": "too_long"}


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
    feature_encoder_lr_scale: float | None = field(
        default=None,
        metadata={"help": "Learning rate of the feature encoder f: X -> Z (wav2vec2.feature_extractor), as a fraction "
                          "of learning_rate, when f trains (--freeze_feature_encoder false). Default: encoder_lr_scale."},
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
        if self.feature_encoder_lr_scale is not None and self.feature_encoder_lr_scale <= 0:
            raise ValueError(f"feature_encoder_lr_scale={self.feature_encoder_lr_scale} must be positive; use "
                             "--freeze_feature_encoder true to hold f still.")  # fmt: skip


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """``LengthGroupedSampler`` whose shuffle in epoch ``e`` is drawn from ``seed + e`` alone.

    The Trainer (through Accelerate's data loader) calls ``set_epoch`` before each epoch, a
    resumed one included, so the batches of an epoch do not depend on where a run was resumed.
    """

    def __init__(self, batch_size: int, lengths: list, seed: int):
        super().__init__(batch_size, lengths=lengths, generator=torch.Generator())
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        self.generator.manual_seed(self.seed + self.epoch)
        return super().__iter__()


class _CountingCollator:
    """The training collator, plus how many files of each batch it added to each list of
    :data:`COUNTED` (a collator without such a list reports nothing for it)."""

    def __init__(self, collator):
        self.collator = collator

    def __call__(self, examples):
        lists = {count: getattr(self.collator, name) for count, name in COUNTED.items() if hasattr(self.collator, name)}
        before = {count: len(named) for count, named in lists.items()}
        batch = self.collator(examples)
        if lists:
            batch[_COUNTS] = {count: len(named) - before[count] for count, named in lists.items()}
        return batch


def read_run_state(checkpoint: str | Path | None) -> dict:
    """``w2v2_run_state.json`` of a checkpoint folder (``{}`` without one, e.g. a transformers checkpoint)."""
    path = Path(checkpoint) / RUN_STATE if checkpoint else None
    return json.loads(path.read_text()) if path is not None and path.is_file() else {}


def greedy_ids(logits: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Best path ids per frame, ``(batch, frames)``: keeps only ids for metrics (``preprocess_logits_for_metrics``)."""
    if isinstance(logits, tuple):
        logits = logits[0]
    return logits.argmax(dim=-1)


def make_compute_metrics(tokenizer, metric=None):
    """``compute_metrics`` for Trainer: greedy CTC decoding, then corpus WER and CER, and PER
    (``per``) when the tokenizer reads space-separated symbols (:func:`symbol_metric_kwargs`).

    Expects the predictions reduced to ids by :func:`greedy_ids`; padding (-100, from labels
    and from concatenating batches) decodes as blank.
    """
    metric = metric if metric is not None else load_wer_cer()
    extra = symbol_metric_kwargs(tokenizer)

    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        pred_ids = np.asarray(prediction.predictions)
        label_ids = np.asarray(prediction.label_ids)
        predictions = tokenizer.batch_decode(pred_ids)
        references = tokenizer.batch_decode(label_ids, group_tokens=False)
        return metric.compute(predictions=predictions, references=references, **extra)

    return compute_metrics


def symbol_metric_kwargs(tokenizer) -> dict:
    """``{"symbols": True, "word_delimiter": ...}`` for ``load_wer_cer().compute`` when ``tokenizer``
    is in symbol mode (a ``phone_delimiter_token``: w2v2's or transformers' phoneme tokenizer), else ``{}``."""
    if getattr(tokenizer, "phone_delimiter_token", None) is None:
        return {}
    return {"symbols": True, "word_delimiter": getattr(tokenizer, "_word_delimiter_token", None)}


class CTCTrainer(Trainer):
    """``Trainer`` that reads the recipe fields of :class:`CTCTrainingArguments`.

    - ``tri_stage_schedule``: the scheduler is :func:`get_tri_stage_schedule` over the run.
    - ``freeze_finetune_updates`` > 0: adds :class:`FreezeEncoderCallback`.
    - ``encoder_lr_scale`` != 1: parameters outside ``lm_head`` get ``encoder_lr_scale * learning_rate``;
      ``feature_encoder_lr_scale`` set: those of f (``FEATURE_ENCODER_PREFIX``) get that fraction instead.
    - exact resume (module docstring): ``train_loss`` is the mean over every update of the run,
      resumes included.
    - each training log has ``files_skipped`` and ``labels_too_long`` (module docstring) for the
      whole run so far; with a collator that does not name labels too long, the latter is
      ``W2V2ForCTC``'s ``impossible_alignments`` (which, for a batch without attention mask,
      counts the padded length as every utterance's).
    With plain ``TrainingArguments`` it behaves like ``Trainer``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        freeze = getattr(self.args, "freeze_finetune_updates", None) or 0
        if freeze > 0:
            self.add_callback(FreezeEncoderCallback(freeze))
        self.counts = dict.fromkeys(COUNTED, 0)
        self._loss_sum = torch.zeros((), dtype=torch.float64)

    # ---- exact resume: data order, run totals, marked checkpoints ----
    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if type(sampler) is LengthGroupedSampler and sampler.generator is None:
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return EpochSeededLengthGroupedSampler(sampler.batch_size, sampler.lengths, seed)
        return sampler

    def train(self, resume_from_checkpoint=None, **kwargs):
        state = read_run_state(resume_from_checkpoint if isinstance(resume_from_checkpoint, (str, Path)) else None)
        self._loss_sum = torch.tensor(state.get("loss_sum", 0.0), dtype=torch.float64, device=self.args.device)
        self.counts = {count: state.get(count, 0) for count in COUNTED}
        output = super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)
        return TrainOutput(output.global_step, output.metrics.get("train_loss", output.training_loss), output.metrics)

    def get_train_dataloader(self):
        shared, self.data_collator = self.data_collator, _CountingCollator(self.data_collator)
        try:
            return super().get_train_dataloader()
        finally:
            self.data_collator = shared

    def training_step(self, model, inputs, num_items_in_batch=None):
        counts = inputs.pop(_COUNTS, {})
        before = getattr(self.model, "impossible_alignments", 0)
        loss = super().training_step(model, inputs, num_items_in_batch)
        counts.setdefault("labels_too_long", getattr(self.model, "impossible_alignments", 0) - before)
        for count, n in counts.items():
            self.counts[count] += n
        self._loss_sum += torch.where(torch.isfinite(loss), loss.double(), 0.0)  # on the device: no sync per step
        return loss

    def _run_loss_sum(self) -> float:
        """The training loss summed over every update so far (mean over processes); every process calls it."""
        return self.accelerator.reduce(self._loss_sum.clone(), reduction="mean").item()

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "train_runtime" in logs and "train_loss" in logs:  # train()'s summary: the whole run, resumes included
            logs["train_loss"] = self._run_loss_sum() / max(self.state.global_step, 1)
        elif "loss" in logs:
            logs.update(self.counts)
        super().log(logs, start_time)

    def _save_checkpoint(self, model, trial) -> None:
        folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        if self.args.should_save and folder.exists():  # left by an interrupted save of this update
            shutil.rmtree(folder)
        self.accelerator.wait_for_everyone()
        limit, self.args.save_total_limit = self.args.save_total_limit, None  # rotate once the new one is complete
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = limit
        state = {"loss_sum": self._run_loss_sum(), **self.counts, "bf16": bool(self.args.bf16), "fp16": bool(self.args.fp16)}
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            (folder / RUN_STATE).write_text(json.dumps(state, indent=1))
            mark_complete(folder, self.state.global_step, FINETUNE_MARKER)
            rotate_checkpoints(str(folder.parent), limit, self.state.best_model_checkpoint, use_mtime=True)

    def create_optimizer(self, model=None):
        rest = getattr(self.args, "encoder_lr_scale", 1.0)
        feature = getattr(self.args, "feature_encoder_lr_scale", None)
        scales = {"head": 1.0, "feature_encoder": rest if feature is None else feature, "rest": rest}
        if self.optimizer is not None or set(scales.values()) == {1.0}:
            return super().create_optimizer(model)
        optimizer = super().create_optimizer(model)
        # Split each of Trainer's groups (weight decay or not) into the head, f and the rest; the
        # scheduler, built next, scales every group's own lr.
        names = {id(p): n for n, p in (self.model if model is None else model).named_parameters()}

        def part(p: torch.nn.Parameter) -> str:
            name = names.get(id(p), "")
            return "head" if name.startswith("lm_head") else "feature_encoder" if name.startswith(FEATURE_ENCODER_PREFIX) else "rest"

        groups = []
        for group in optimizer.param_groups:
            for which, scale in scales.items():
                params = [p for p in group["params"] if part(p) == which]
                if params:
                    groups.append({**group, "params": params, "lr": group["lr"] * scale})
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
