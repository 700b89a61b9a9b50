"""The tri-stage learning-rate schedule of wav2vec 2.0 fine-tuning, as a torch ``LambdaLR``.

fairseq's ``tri_stage`` scheduler (used by every ``base_*`` fine-tuning recipe) runs in three
phases over ``num_training_steps`` updates, split by ``phase_ratios`` (0.1 / 0.4 / 0.5):

1. warmup: linear from ``init_lr_scale * lr`` to ``lr``,
2. hold:   constant ``lr``,
3. decay:  exponential from ``lr`` to ``final_lr_scale * lr``; it stays there afterwards.

``LambdaLR`` multiplies each parameter group's base learning rate by the factor below, so the
schedule works with any optimizer, with transformers' ``Trainer`` (``CTCTrainer`` creates it;
or pass ``optimizers=(optimizer, scheduler)``) and with per-group learning rates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["tri_stage_lr_factor", "get_tri_stage_schedule", "tri_stage_phase_steps"]

# fairseq base_10m.yaml: phase_ratio [0.1, 0.4, 0.5], init_lr_scale 0.01, final_lr_scale 0.05
DEFAULT_PHASE_RATIOS = (0.1, 0.4, 0.5)
DEFAULT_INIT_LR_SCALE = 0.01
DEFAULT_FINAL_LR_SCALE = 0.05


def tri_stage_phase_steps(num_training_steps: int, phase_ratios: Sequence[float] = DEFAULT_PHASE_RATIOS) -> tuple[int, int, int]:
    """Split ``num_training_steps`` into (warmup, hold, decay) update counts.

    13,000 updates with the default ratios give (1300, 5200, 6500), as in fairseq's base_10m.
    """
    if num_training_steps <= 0:
        raise ValueError(f"num_training_steps must be positive, got {num_training_steps}; set max_steps or num_train_epochs.")
    if len(phase_ratios) != 3 or any(r < 0 for r in phase_ratios) or abs(sum(phase_ratios) - 1.0) > 1e-6:
        raise ValueError(
            f"phase_ratios must be three non-negative numbers summing to 1 (warmup, hold, decay), got {list(phase_ratios)}; "
            "fairseq's recipe uses 0.1 0.4 0.5."
        )
    warmup = int(num_training_steps * phase_ratios[0])
    hold = int(num_training_steps * phase_ratios[1])
    decay = int(num_training_steps * phase_ratios[2])
    return warmup, hold, decay


def tri_stage_lr_factor(
    step: int,
    warmup_steps: int,
    hold_steps: int,
    decay_steps: int,
    init_lr_scale: float = DEFAULT_INIT_LR_SCALE,
    final_lr_scale: float = DEFAULT_FINAL_LR_SCALE,
) -> float:
    """The factor ``lr(step) / lr`` of the tri-stage schedule after ``step`` updates."""
    if step < warmup_steps:  # 1. warmup: init_lr_scale -> 1, linear
        return init_lr_scale + (1.0 - init_lr_scale) * step / warmup_steps
    step -= warmup_steps
    if step < hold_steps:  # 2. hold: 1
        return 1.0
    step -= hold_steps
    if step < decay_steps:  # 3. decay: 1 -> final_lr_scale, exp(-k * t) with k = -ln(final_lr_scale) / decay_steps
        return math.exp(math.log(final_lr_scale) * step / decay_steps)
    return final_lr_scale


def get_tri_stage_schedule(
    optimizer: Optimizer,
    num_training_steps: int,
    phase_ratios: Sequence[float] = DEFAULT_PHASE_RATIOS,
    init_lr_scale: float = DEFAULT_INIT_LR_SCALE,
    final_lr_scale: float = DEFAULT_FINAL_LR_SCALE,
    last_epoch: int = -1,
) -> LambdaLR:
    """A ``LambdaLR`` following the tri-stage schedule over ``num_training_steps`` updates."""
    for name, value in (("init_lr_scale", init_lr_scale), ("final_lr_scale", final_lr_scale)):
        if not 0.0 < value <= 1.0:
            raise ValueError(f"{name} must be in (0, 1], got {value}; fairseq uses init 0.01 and final 0.05.")
    warmup, hold, decay = tri_stage_phase_steps(num_training_steps, phase_ratios)

    def factor(step: int) -> float:
        return tri_stage_lr_factor(step, warmup, hold, decay, init_lr_scale, final_lr_scale)

    return LambdaLR(optimizer, factor, last_epoch=last_epoch)
