"""Parity with transformers' Wav2Vec2 classes on copied weights, in both directions."""

import pytest
import torch
from transformers import AutoModelForCTC, Wav2Vec2ForCTC, Wav2Vec2ForPreTraining

from w2v2 import W2V2Config, W2V2ForCTC, W2V2ForPreTraining, sample_negatives, to_transformers
from w2v2.conversion import config_to_transformers
from w2v2.modeling import compute_span_mask

pytestmark = pytest.mark.parity

# BASE-like: group norm, post-LN, no conv bias, no attention mask (as transformers feeds those
# models). LARGE-like: layer norm, pre-LN, conv bias, with the attention mask of a padded batch.
VARIANTS = {
    "base": dict(feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False),
    "large": dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True),
}
TOL = 1e-4


def _config(variant):
    return W2V2Config.tiny(num_hidden_layers=3, **VARIANTS[variant])


def _inputs(variant, padded_batch):
    x, mask = padded_batch
    return (x, mask) if variant == "large" else (x, None)


def _max_diff(a, b):
    return (a - b).abs().max().item()


@pytest.mark.parametrize("variant", VARIANTS)
def test_ctc_logits_and_hidden_states_match_transformers(variant, padded_batch):
    torch.manual_seed(0)
    ours = W2V2ForCTC(_config(variant)).eval()
    theirs = to_transformers(ours).eval()
    x, mask = _inputs(variant, padded_batch)
    with torch.no_grad():
        a = ours(x, attention_mask=mask, output_hidden_states=True)
        b = theirs(x, attention_mask=mask, output_hidden_states=True)
    assert _max_diff(a.logits, b.logits) <= TOL
    assert len(a.hidden_states) == len(b.hidden_states) == ours.config.num_hidden_layers + 1
    for ha, hb in zip(a.hidden_states, b.hidden_states):
        assert _max_diff(ha, hb) <= TOL


@pytest.mark.parametrize("variant", VARIANTS)
def test_transformers_checkpoint_loads_into_w2v2(variant, padded_batch, tmp_path):
    """transformers -> w2v2: a directory saved by Wav2Vec2ForCTC (model_type wav2vec2) loads."""
    torch.manual_seed(1)
    theirs = Wav2Vec2ForCTC(_config_as_transformers(variant)).eval()
    theirs.save_pretrained(tmp_path)
    ours = W2V2ForCTC.from_pretrained(tmp_path).eval()
    assert ours.config.model_type == "w2v2"
    x, mask = _inputs(variant, padded_batch)
    with torch.no_grad():
        assert _max_diff(ours(x, attention_mask=mask).logits, theirs(x, attention_mask=mask).logits) <= TOL


@pytest.mark.parametrize("variant", VARIANTS)
def test_to_transformers_save_loads_with_stock_auto_class(variant, padded_batch, tmp_path):
    """w2v2 -> to_transformers -> save -> stock AutoModelForCTC (no w2v2 config involved)."""
    torch.manual_seed(2)
    ours = W2V2ForCTC(_config(variant)).eval()
    to_transformers(ours).save_pretrained(tmp_path)
    assert '"model_type": "wav2vec2"' in (tmp_path / "config.json").read_text()
    theirs = AutoModelForCTC.from_pretrained(tmp_path).eval()
    assert type(theirs) is Wav2Vec2ForCTC
    x, mask = _inputs(variant, padded_batch)
    with torch.no_grad():
        assert _max_diff(ours(x, attention_mask=mask).logits, theirs(x, attention_mask=mask).logits) <= TOL


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("direction", ["from_transformers", "to_transformers"])
def test_pretraining_outputs_match_transformers(variant, direction, padded_batch):
    torch.manual_seed(3)
    if direction == "from_transformers":
        theirs = Wav2Vec2ForPreTraining(_config_as_transformers(variant)).eval()
        ours = W2V2ForPreTraining.from_transformers(theirs).eval()
    else:
        ours = W2V2ForPreTraining(_config(variant)).eval()
        theirs = to_transformers(ours).eval()
    x, mask = _inputs(variant, padded_batch)
    frames = int(ours._get_feat_extract_output_lengths(x.shape[1]))
    frame_mask = None if mask is None else ours._get_feature_vector_attention_mask(frames, mask)
    g = torch.Generator().manual_seed(0)
    time_mask = compute_span_mask((x.shape[0], frames), 0.65, 10, min_masks=2, attention_mask=frame_mask, generator=g)
    negatives = sample_negatives(time_mask, ours.config.num_negatives, generator=g)
    with torch.no_grad():
        a = ours(x, attention_mask=mask, mask_time_indices=time_mask, sampled_negative_indices=negatives)
        b = theirs(x, attention_mask=mask, mask_time_indices=time_mask, sampled_negative_indices=negatives)
    assert _max_diff(a.projected_states, b.projected_states) <= TOL
    assert _max_diff(a.projected_quantized_states, b.projected_quantized_states) <= TOL
    assert _max_diff(a.codevector_perplexity, b.codevector_perplexity) <= TOL
    assert abs(a.contrastive_loss.item() - b.contrastive_loss.item()) <= 1e-3
    assert abs(a.diversity_loss.item() - b.diversity_loss.item()) <= 1e-3
    # Our loss is per masked frame: transformers' summed loss divided by N, plus beta * penalty.
    expected = b.loss.item() / a.num_masked.item() + ours.config.feature_penalty_weight * a.feature_penalty.item()
    assert abs(a.loss.item() - expected) <= 1e-3


def _config_as_transformers(variant):
    return config_to_transformers(_config(variant))
