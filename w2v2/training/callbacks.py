"""``freeze_finetune_updates`` for transformers' Trainer.

fairseq fine-tunes wav2vec 2.0 with the whole pretrained network frozen for the first
``freeze_finetune_updates`` updates (10,000 of 13,000 in base_10m), so that only the new CTC
head (``lm_head``) learns while it is random; the feature encoder ``f: X -> Z`` stays frozen for
the whole run (``feature_grad_mult: 0.0``), which ``model.freeze_feature_encoder()`` does.

The callback turns ``requires_grad`` off on every trainable parameter outside the head when
training begins (after the Trainer has built its optimizer, so the optimizer still holds them)
and back on once ``state.global_step`` reaches ``freeze_updates``. Frozen parameters get no
gradient, and torch's Adam/AdamW skip parameters whose ``grad`` is ``None``, so neither the
update nor the weight decay touches them. Under DDP set ``ddp_find_unused_parameters=True``.
"""

from __future__ import annotations

import torch
from transformers import TrainerCallback

__all__ = ["FreezeEncoderCallback"]


class FreezeEncoderCallback(TrainerCallback):
    """Train only the parameters whose names start with ``head_prefix`` for ``freeze_updates`` updates.

    Args:
        freeze_updates: number of optimizer updates with the encoder frozen (0 disables).
        head_prefix: parameter-name prefix of the part that always trains; ``"lm_head"`` is the
            CTC head of both ``W2V2ForCTC`` and transformers' ``Wav2Vec2ForCTC``.
    """

    def __init__(self, freeze_updates: int, head_prefix: str = "lm_head"):
        if freeze_updates < 0:
            raise ValueError(f"freeze_updates must be >= 0, got {freeze_updates}; use 0 to train everything from the start.")
        self.freeze_updates = freeze_updates
        self.head_prefix = head_prefix
        self._frozen: list[torch.nn.Parameter] = []

    @property
    def frozen(self) -> bool:
        return bool(self._frozen)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is None:
            raise ValueError("FreezeEncoderCallback needs the model; add it to a transformers Trainer, which passes it.")
        if state.global_step >= self.freeze_updates:  # disabled, or resuming past the frozen phase
            return
        head = [p for n, p in model.named_parameters() if n.startswith(self.head_prefix)]
        if not head:
            raise ValueError(
                f"no parameter name starts with head_prefix={self.head_prefix!r}; pass the prefix of the CTC head "
                "(the output layer that maps hidden states to the vocabulary)."
            )
        self._frozen = [
            p for n, p in model.named_parameters() if p.requires_grad and not n.startswith(self.head_prefix)
        ]
        for p in self._frozen:
            p.requires_grad_(False)

    def on_step_begin(self, args, state, control, **kwargs):
        if self._frozen and state.global_step >= self.freeze_updates:
            self._unfreeze()

    def on_train_end(self, args, state, control, **kwargs):
        self._unfreeze()  # a run shorter than freeze_updates leaves the model as it found it

    def _unfreeze(self):
        for p in self._frozen:
            p.requires_grad_(True)
        self._frozen = []
