"""Span masking and negative sampling for wav2vec 2.0, as pure, seedable torch functions.

Used by the models (pretraining mask, SpecAugment), the training collators and the tests.
Everything runs on the device of its inputs; pass a ``torch.Generator`` on that device for
reproducible draws, or seed torch globally.

Masking (paper, section 3.1 / 4.2): every frame of an utterance of length T becomes a span
start with probability p, and each start masks the M frames that follow; spans may overlap.
As in fairseq and transformers, the number of starts is drawn as
``floor(mask_prob * T / M + u)``, u ~ U[0, 1), with ``mask_prob = p * M`` (0.65 for p = 0.065,
M = 10), and the starts are distinct positions drawn uniformly without replacement. With
overlaps, the expected masked fraction is about 1 - (1 - p)**M (49% for the paper's values).
"""

import torch
import torch.nn.functional as F

__all__ = ["compute_span_mask", "sample_negatives"]


def compute_span_mask(
    shape: tuple[int, int],
    mask_prob: float,
    mask_length: int,
    *,
    min_masks: int = 0,
    attention_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.BoolTensor:
    """Sample a span mask.

    Args:
        shape: ``(batch, frames)``.
        mask_prob: p * M, the expected fraction of frames covered before overlap (0.65 in the paper).
        mask_length: M, the length of each span in frames (10 in the paper).
        min_masks: at least this many spans per utterance (fairseq: 2), as far as the length allows.
        attention_mask: ``(batch, frames)``, nonzero on real frames. Padded frames are never masked
            and the number of spans follows each utterance's own length. Must be left-aligned.
        generator: a ``torch.Generator`` on ``device`` for reproducible masks.
        device: where to create the mask; defaults to ``attention_mask``'s device, else CPU.

    Returns:
        ``(batch, frames)`` bool tensor, True where a frame is masked.
    """
    batch, frames = shape
    if not 0.0 <= mask_prob <= 1.0:
        raise ValueError(f"mask_prob={mask_prob} is not in [0, 1]; it is p * M, e.g. 0.65 for p=0.065, M=10.")
    if mask_length < 1:
        raise ValueError(f"mask_length={mask_length} must be at least 1 frame.")
    if attention_mask is not None:
        if tuple(attention_mask.shape) != (batch, frames):
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected {(batch, frames)}.")
        device = attention_mask.device
        lengths = attention_mask.long().sum(-1)  # (B,)
    else:
        lengths = torch.full((batch,), frames, dtype=torch.long, device=device)

    # Number of spans per utterance: floor(mask_prob * T / M + u), at least min_masks.
    u = torch.rand(batch, generator=generator, device=device)
    num_spans = torch.floor(mask_prob * lengths / mask_length + u).long().clamp(min=min_masks)
    # A span starts in [0, T - M]; an utterance shorter than M gets one span from frame 0,
    # cut at its end (transformers#15366 crashed on those).
    num_starts = (lengths - mask_length + 1).clamp(min=1)
    num_spans = torch.minimum(num_spans, num_starts).masked_fill(lengths == 0, 0)

    # Distinct starts, uniformly: rank random keys, keeping invalid positions last.
    positions = torch.arange(frames, device=device)  # (T,)
    keys = torch.rand(batch, frames, generator=generator, device=device)
    keys = keys.masked_fill(positions[None, :] >= num_starts[:, None], 2.0)
    rank = keys.argsort(dim=-1).argsort(dim=-1)  # (B, T): rank of each position's key
    starts = rank < num_spans[:, None]  # (B, T)

    # Frame t is masked when a span starts in (t - M, t]: a difference of running counts.
    counts = starts.long().cumsum(-1)  # (B, T)
    counts_before = F.pad(counts, (mask_length, 0))[:, :frames]  # (B, T): counts[t - M]
    mask = (counts - counts_before) > 0
    return mask & (positions[None, :] < lengths[:, None])


def sample_negatives(
    mask_time_indices: torch.Tensor,
    num_negatives: int,
    *,
    generator: torch.Generator | None = None,
) -> torch.LongTensor:
    """Draw K distractors for every frame from the *masked* frames of the same utterance.

    For a masked frame t of utterance b, each of the K negatives is drawn uniformly (with
    replacement, as in fairseq) from the other masked frames of b, never t itself. Unmasked
    frames also get indices (so the result is a dense tensor) but the loss ignores them.
    An utterance with a single masked frame has no distractor: its negatives point at the
    positive and the loss masks them out (their logit is -inf).

    Args:
        mask_time_indices: ``(batch, frames)`` bool, the masked frames.
        num_negatives: K (100 in the paper).
        generator: a ``torch.Generator`` on the mask's device, for reproducible draws.

    Returns:
        ``(batch, frames, K)`` long indices into the flattened ``(batch * frames)`` axis: the
        format of transformers' ``sampled_negative_indices``.
    """
    if num_negatives < 1:
        raise ValueError(f"num_negatives={num_negatives} must be at least 1 (the paper uses K=100).")
    mask = mask_time_indices.bool()
    batch, frames = mask.shape
    device = mask.device
    num_masked = mask.long().sum(-1)  # (B,)

    # Positions of the masked frames first, in time order: (B, T).
    masked_positions = torch.argsort((~mask).to(torch.uint8), dim=-1, stable=True)
    # Rank of each frame among its utterance's masked frames: (B, T).
    rank = mask.long().cumsum(-1) - 1

    # Draw among the m - 1 other masked frames, then step over the positive's own rank.
    choices = (num_masked - 1).clamp(min=1)  # (B,)
    draw = torch.rand(batch, frames, num_negatives, generator=generator, device=device)
    pick = (draw * choices[:, None, None]).long()  # (B, T, K) in [0, m - 2]
    pick = pick + (pick >= rank[..., None]).long()
    pick = torch.minimum(pick, (num_masked - 1).clamp(min=0)[:, None, None])

    negatives = torch.gather(masked_positions, 1, pick.view(batch, frames * num_negatives))
    offsets = torch.arange(batch, device=device)[:, None] * frames  # (B, 1)
    return (negatives + offsets).view(batch, frames, num_negatives)
