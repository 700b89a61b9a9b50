"""A monitor for the known ways wav2vec 2.0 pretraining fails (see REFERENCE, "Health signals").

* ``stuck_at_chance``: the contrastive loss per masked frame stays near ln(K+1) nats, the
  value of uniform guessing over K+1 candidates (fairseq#3661 reports 6.658 = log2(101) bits).
* ``codebook_collapse``: code perplexity falls toward G, one codeword per group
  (fairseq#1850, transformers#19588).
* ``trivial_task``: accuracy near 1 with a tiny loss early in training (fairseq#3687,
  transformers#14387: loss 0.0013).
* ``vanishing_gradient``: gradient norm near 0 (transformers#14387: about 1e-19).

Each signature is judged on a moving average over ``window`` updates and reported once when
it appears (again after it has cleared). The training loop decides whether to stop.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping

__all__ = ["HealthMonitor"]


class HealthMonitor:
    """Watch the per-update metrics of pretraining and return warnings.

    Args:
        num_negatives: K, so chance level is ln(K+1) nats and accuracy 1/(K+1).
        num_codevector_groups: G, the floor of the code perplexity.
        patience: updates before a loss still at chance counts as stuck.
        early_updates: "trivial_task" is only judged before this update.
        window: updates in the moving average.
        chance_margin: relative distance from ln(K+1) that still counts as "at chance".
        min_perplexity_factor: code perplexity below this multiple of G counts as collapsed.
        min_grad_norm: a gradient norm below this counts as vanished.
    """

    METRICS = ("contrastive_loss", "contrastive_accuracy", "code_perplexity", "grad_norm")

    def __init__(self, num_negatives: int, num_codevector_groups: int, *, patience: int = 1000,
                 early_updates: int = 5000, window: int = 50, chance_margin: float = 0.02,
                 min_perplexity_factor: float = 1.5, min_grad_norm: float = 1e-6):
        if window < 1:
            raise ValueError(f"window={window} must be at least 1 update.")
        self.chance_loss = math.log(num_negatives + 1)
        self.groups = num_codevector_groups
        self.patience, self.early_updates, self.window = patience, early_updates, window
        self.chance_margin, self.min_perplexity_factor, self.min_grad_norm = chance_margin, min_perplexity_factor, min_grad_norm
        self._recent = {k: deque(maxlen=window) for k in self.METRICS}
        self.active: set[str] = set()

    def _mean(self, key: str) -> float | None:
        values = self._recent[key]
        return sum(values) / len(values) if len(values) == self.window else None

    def update(self, step: int, metrics: Mapping[str, float]) -> list[str]:
        """Record one update's metrics (per masked frame); return the newly raised warnings."""
        for key in self.METRICS:
            if key in metrics and math.isfinite(metrics[key]):
                self._recent[key].append(float(metrics[key]))
        loss, acc = self._mean("contrastive_loss"), self._mean("contrastive_accuracy")
        ppl, gnorm = self._mean("code_perplexity"), self._mean("grad_norm")
        found = {}
        if step >= self.patience and loss is not None and loss >= self.chance_loss * (1 - self.chance_margin):
            found["stuck_at_chance"] = (
                f"contrastive loss {loss:.3f} nats per masked frame is still at chance ln(K+1) = "
                f"{self.chance_loss:.3f} after {step} updates: lower the learning rate, lengthen warmup or enlarge the batch "
                "(for small models on little data, shorten the mask span: recipe small uses M=4)"
            )
        if ppl is not None and ppl < self.min_perplexity_factor * self.groups:
            found["codebook_collapse"] = (
                f"code perplexity {ppl:.2f} is falling toward G = {self.groups}: the quantizer uses one "
                "codeword per group; raise the diversity weight or the Gumbel temperature"
            )
        if step < self.early_updates and acc is not None and loss is not None and acc > 0.98 and loss < 0.05:
            found["trivial_task"] = (
                f"accuracy {acc:.3f} with loss {loss:.4f} after only {step} updates: the task has become "
                "trivial (collapse); check the masks (mask_time_prob, mask length) and the negatives"
            )
        if gnorm is not None and gnorm < self.min_grad_norm:
            found["vanishing_gradient"] = f"gradient norm {gnorm:.2e} is near 0: training has stopped moving (collapse)"
        new = [f"[health] {name}: {text}" for name, text in found.items() if name not in self.active]
        self.active = set(found)
        return new
