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

Fine-tuning's CTC loss is torch's; :func:`ctc_frames_needed` says which labels it cannot align.
"""

import torch
import torch.nn.functional as F

__all__ = ["contrastive_logits", "contrastive_loss", "ctc_frames_needed", "diversity_loss", "pretraining_loss"]


def contrastive_logits(
    c: torch.Tensor,
    q: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    kappa: float,
    *,
    codes: torch.Tensor | None = None,
    max_similarity_entries: int = 1 << 24,
) -> torch.Tensor:
    """sim(c_t, q~) / kappa, cosine similarity, for the N masked frames only.

    c: (N, D) context vectors of the masked frames, projected to the codevector space;
    q: (M, D) the quantized, projected targets the loss reads (the masked frames and their
    distractors, or all B*T frames); positives: (N,) the row of q that is each frame's q_t;
    negatives: (N, K) rows of q, its K distractors; codes: (M, G) the codeword chosen per group
    for each row of q. Returns logits (N, K + 1), the positive at index 0, in fp32.

    A distractor with the same codewords as its positive gets -inf so it cannot count as both
    right and wrong. fairseq and transformers test equality of the vectors; the codes say the
    same in eval, and also in training, where the straight-through Gumbel output can differ from
    the codeword by a rounding error. Without ``codes`` the vectors are compared.

    While N * M <= ``max_similarity_entries`` the logits are read from the (N, M) similarity
    matrix (one matmul); beyond it (very large batches) the (N, K + 1, D) targets are gathered.
    """
    c_hat = F.normalize(c.float(), dim=-1, eps=1e-8)  # (N, D)
    q_hat = F.normalize(q.float(), dim=-1, eps=1e-8)  # (M, D)
    targets = torch.cat([positives[:, None], negatives], dim=1)  # (N, K+1) rows of q
    if c.shape[0] * q.shape[0] <= max_similarity_entries:
        logits = (c_hat @ q_hat.T).gather(1, targets)  # (N, M) -> (N, K+1)
    else:
        logits = torch.einsum("nd,nkd->nk", c_hat, q_hat[targets])
    logits = logits / kappa
    same = codes if codes is not None else q
    neg_is_pos = (same[negatives] == same[positives][:, None]).all(-1)  # (N, K)
    return torch.cat([logits[:, :1], logits[:, 1:].masked_fill(neg_is_pos, float("-inf"))], dim=1)


def contrastive_loss(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """L_m = -sum_t log softmax(logits_t)[positive] over the masked frames t.

    logits: (N, K+1), the positive at index 0. Returns (summed loss, accuracy), where accuracy
    is the fraction of masked frames whose positive scores strictly highest (fairseq does not
    count rows where every logit ties, as happens after a collapse).
    """
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    loss = F.cross_entropy(logits, target, reduction="sum")
    with torch.no_grad():
        is_max = logits.argmax(-1) == 0
        is_min = logits.argmin(-1) == 0
        correct = (is_max & ~is_min).sum()
        accuracy = correct.float() / max(logits.shape[0], 1)
    return loss, accuracy


def pretraining_loss(contrastive, diversity, penalty, kmeans=None, *, config):
    """The objective per masked frame, from per-frame terms (tensors or floats): L = L_m + alpha
    L_d + beta P, plus ``kmeans_loss_weight`` L_k with vq-wav2vec's k-means quantizer (it has no
    L_d). The model's ``loss`` and the trainer's logged ``loss`` are both this one formula."""
    loss = contrastive + config.diversity_loss_weight * diversity + config.feature_penalty_weight * penalty
    return loss if kmeans is None else loss + config.kmeans_loss_weight * kmeans


def diversity_loss(perplexity: torch.Tensor, num_codevectors: int) -> torch.Tensor:
    """L_d = (G*V - perplexity) / (G*V): 0 when all G*V codewords are used equally often."""
    return (num_codevectors - perplexity) / num_codevectors


def ctc_frames_needed(labels: torch.Tensor, pad_token_id: int | None = None) -> torch.Tensor:
    """Fewest frames a CTC alignment of each label sequence needs: U tokens plus one blank
    between each pair of equal neighbours. More than the utterance has frames, and CTC's loss
    is inf (0 under ``zero_infinity``).

    labels (Tensor): Shape: [batch, label_len], padded with -100 (or ``pad_token_id``).
    Returns a Tensor of Shape: [batch].
    """
    tokens = labels >= 0
    if pad_token_id is not None:
        tokens &= labels != pad_token_id
    repeats = ((labels[:, 1:] == labels[:, :-1]) & tokens[:, 1:] & tokens[:, :-1]).sum(-1)  # (B,)
    return tokens.sum(-1) + repeats
