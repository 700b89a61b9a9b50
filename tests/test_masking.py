"""Span masks and negative sampling: the paper's statistics, padding, and reproducibility."""

import pytest
import torch

from w2v2 import compute_span_mask, sample_negatives


def test_masked_fraction_matches_the_papers_scheme():
    # Starts with probability p = 0.065, spans of M = 10 that may overlap: 1 - (1 - p)**M ~ 49%.
    g = torch.Generator().manual_seed(0)
    mask = compute_span_mask((256, 500), 0.65, 10, min_masks=2, generator=g)
    expected = 1 - (1 - 0.065) ** 10  # 0.489
    fraction = mask.float().mean().item()
    # 128,000 frames; per-utterance fractions have std ~0.04, so the batch mean is within ~0.003.
    assert abs(fraction - expected) < 0.015, fraction
    # transformers' mask_time_prob (p * M = 0.65) is the fraction *before* overlap, not after.
    assert fraction < 0.6


def test_spans_have_length_m_and_min_masks_holds():
    g = torch.Generator().manual_seed(1)
    mask = compute_span_mask((64, 40), 0.0, 10, min_masks=2, generator=g)
    # mask_prob 0 leaves only the min_masks spans: 2 spans of 10, overlapping or not.
    counts = mask.sum(-1)
    assert counts.min() >= 10 and counts.max() <= 20
    runs = torch.diff(torch.nn.functional.pad(mask.int(), (1, 1)), dim=-1)
    lengths = (runs == -1).nonzero()[:, 1] - (runs == 1).nonzero()[:, 1]
    assert lengths.min() >= 10  # merged overlapping spans can only be longer


def test_padded_frames_are_never_masked():
    g = torch.Generator().manual_seed(2)
    lengths = torch.tensor([100, 37, 5, 0])
    attention = torch.arange(100)[None, :] < lengths[:, None]
    for _ in range(20):
        mask = compute_span_mask((4, 100), 0.65, 10, min_masks=2, attention_mask=attention, generator=g)
        assert not (mask & ~attention).any()
    # An utterance shorter than M still gets its span (cut at its end); an empty one gets none.
    assert mask[2].sum() == 5 and mask[3].sum() == 0


def test_same_seed_same_masks_and_negatives():
    def draw(seed):
        g = torch.Generator().manual_seed(seed)
        mask = compute_span_mask((3, 200), 0.65, 10, min_masks=2, generator=g)
        return mask, sample_negatives(mask, 20, generator=g)

    (m1, n1), (m2, n2), (m3, _) = draw(7), draw(7), draw(8)
    assert torch.equal(m1, m2) and torch.equal(n1, n2)
    assert not torch.equal(m1, m3)


def test_negatives_are_other_masked_frames_of_the_same_utterance():
    g = torch.Generator().manual_seed(3)
    B, T, K = 4, 150, 50
    lengths = torch.tensor([150, 120, 90, 60])
    attention = torch.arange(T)[None, :] < lengths[:, None]
    mask = compute_span_mask((B, T), 0.65, 10, min_masks=2, attention_mask=attention, generator=g)
    negatives = sample_negatives(mask, K, generator=g)
    assert negatives.shape == (B, T, K)
    flat_mask = mask.reshape(-1)
    for b in range(B):
        for t in mask[b].nonzero()[:, 0].tolist():
            idx = negatives[b, t]
            assert (idx // T == b).all(), "negative from another utterance"
            assert (idx != b * T + t).all(), "negative equals the positive"
            assert flat_mask[idx].all(), "negative is not a masked frame"
    # Uniform over the other masked frames: every masked frame of utterance 0 gets drawn.
    drawn = torch.unique(negatives[0][mask[0]])
    assert drawn.numel() == mask[0].sum()


def test_single_masked_frame_has_no_distractor_but_does_not_crash():
    mask = torch.zeros(1, 10, dtype=torch.bool)
    mask[0, 4] = True
    negatives = sample_negatives(mask, 3)
    assert (negatives[0, 4] == 4).all()


@pytest.mark.parametrize("bad", [dict(mask_prob=1.5), dict(mask_length=0)])
def test_bad_mask_arguments_are_refused(bad):
    args = dict(mask_prob=0.65, mask_length=10) | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        compute_span_mask((1, 50), **args)
