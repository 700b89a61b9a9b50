"""The pretraining objective L = L_m + alpha * L_d + beta * (feature penalty), paper section 3.2.

Reductions, next to transformers' ``Wav2Vec2ForPreTraining``:

* ``contrastive_loss`` (L_m) is the SUM of the cross-entropy over the N masked frames, as in
  transformers and fairseq;
* ``diversity_loss`` is L_d * N, L_d = (G*V - perplexity) / (G*V), as transformers reports it
  (the function below returns L_d itself);
* transformers' ``loss`` is L_m + alpha * L_d * N (a sum over frames); fairseq divides that
  sum by N before the optimizer step. w2v2's ``loss`` is that per-frame value,
  (L_m + alpha * L_d * N + beta * penalty * N) / N, so it reads in nats per masked frame
  (chance level: ln(K + 1)) and does not change scale with the batch size.
"""

import torch
import torch.nn.functional as F

__all__ = ["contrastive_logits", "contrastive_loss", "diversity_loss"]


def contrastive_logits(c: torch.Tensor, q: torch.Tensor, negatives: torch.Tensor, kappa: float) -> torch.Tensor:
    """sim(c_t, q~) / kappa for the positive q_t and K distractors, with cosine similarity.

    c: (B, T, D) context vectors projected to the codevector space; q: (B, T, D) quantized
    targets; negatives: (K, B, T, D). Returns logits (K + 1, B, T), the positive at index 0.
    A distractor identical to its positive (same codewords) gets -inf so it cannot count as
    both right and wrong.
    """
    targets = torch.cat([q[None], negatives], dim=0)  # (K+1, B, T, D)
    logits = F.cosine_similarity(c.float(), targets.float(), dim=-1) / kappa  # (K+1, B, T)
    neg_is_pos = (q[None] == negatives).all(-1)  # (K, B, T)
    return torch.cat([logits[:1], logits[1:].masked_fill(neg_is_pos, float("-inf"))], dim=0)


def contrastive_loss(logits: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """L_m = -sum_t log softmax(logits_t)[positive] over masked frames t.

    logits: (K+1, B, T); mask: (B, T) bool. Returns (summed loss, accuracy), where accuracy is
    the fraction of masked frames whose positive scores strictly highest (fairseq does not
    count rows where every logit ties, as happens after a collapse).
    """
    masked_logits = logits.permute(1, 2, 0)[mask]  # (N, K+1)
    target = torch.zeros(masked_logits.shape[0], dtype=torch.long, device=logits.device)
    loss = F.cross_entropy(masked_logits, target, reduction="sum")
    with torch.no_grad():
        is_max = masked_logits.argmax(-1) == 0
        is_min = masked_logits.argmin(-1) == 0
        correct = (is_max & ~is_min).sum()
        accuracy = correct.float() / max(masked_logits.shape[0], 1)
    return loss, accuracy


def diversity_loss(perplexity: torch.Tensor, num_codevectors: int) -> torch.Tensor:
    """L_d = (G*V - perplexity) / (G*V): 0 when all G*V codewords are used equally often."""
    return (num_codevectors - perplexity) / num_codevectors
