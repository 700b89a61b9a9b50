"""Unit tests of the w2v2 models on tiny configurations."""

import json
import warnings

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoModelForCTC, AutoModelForPreTraining
from transformers.modeling_layers import GradientCheckpointingLayer

from w2v2 import W2V2Config, W2V2ForCTC, W2V2ForPreTraining, W2V2Model, to_transformers


def _batch(seed=0, batch=2, samples=16000):
    return 0.1 * torch.randn(batch, samples, generator=torch.Generator().manual_seed(seed))


def test_gradient_step_decreases_pretraining_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = W2V2ForPreTraining(W2V2Config.tiny()).train()
    x = _batch()
    mask, negatives = model.sample_masks(x, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss():
        torch.manual_seed(1)  # same Gumbel noise each time
        return model(x, mask_time_indices=mask, sampled_negative_indices=negatives).loss

    before = loss()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = loss()
    assert after.item() < before.item()


def _encoder_grads(feature_grad_mult):
    torch.manual_seed(0)
    model = W2V2ForPreTraining(W2V2Config.tiny(feature_grad_mult=feature_grad_mult))
    x = _batch()
    mask, negatives = model.sample_masks(x, generator=torch.Generator().manual_seed(0))
    model.eval()  # deterministic quantizer, so both runs compute the same function
    model(x, mask_time_indices=mask, sampled_negative_indices=negatives).loss.backward()
    return [p.grad for p in model.wav2vec2.feature_extractor.parameters()], model


@pytest.mark.parametrize("c_in, kernel, stride", [(1, 16, 8), (32, 8, 4), (32, 4, 2), (16, 12, 4), (8, 5, 5), (8, 3, 2), (4, 10, 5)])
def test_time_major_convolution_equals_conv1d_with_gradients(c_in, kernel, stride):
    from w2v2.modeling.components import conv1d_time_major

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 203, c_in, generator=g, requires_grad=True)  # (B, S, C): 203 is no multiple of any stride
    conv = torch.nn.Conv1d(c_in, 6, kernel, stride=stride)
    want = conv(x.transpose(1, 2)).transpose(1, 2)
    got = conv1d_time_major(x, conv.weight, conv.bias, stride)
    assert got.shape == want.shape == (3, (203 - kernel) // stride + 1, 6)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    upstream = torch.randn(want.shape, generator=g)
    grads_want = torch.autograd.grad(want, (x, conv.weight, conv.bias), upstream)
    grads_got = torch.autograd.grad(got, (x, conv.weight, conv.bias), upstream)
    for a, b in zip(grads_got, grads_want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_feature_grad_mult_scales_the_encoder_gradient_exactly():
    full, model_full = _encoder_grads(1.0)
    scaled, model_scaled = _encoder_grads(0.1)
    for a, b in zip(full, scaled):
        torch.testing.assert_close(b, 0.1 * a, rtol=1e-5, atol=1e-9)
    # Only the encoder is scaled: the Transformer's gradients are identical.
    for (name, p), q in zip(model_full.wav2vec2.encoder.named_parameters(), model_scaled.wav2vec2.encoder.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_feature_grad_mult_zero_freezes_the_encoder():
    grads, model = _encoder_grads(0.0)
    assert all(g is None for g in grads)
    assert not any(p.requires_grad for p in model.wav2vec2.feature_extractor.parameters())


def test_quantizing_only_the_loss_frames_gives_the_same_loss_and_gradients():
    torch.manual_seed(0)
    model = W2V2ForPreTraining(W2V2Config.tiny(num_negatives=5)).eval()  # eval: no noise, same function
    x = _batch(batch=3)
    mask, negatives = model.sample_masks(x, generator=torch.Generator().manual_seed(0))
    results = []
    for masked_only in (False, True):
        model.zero_grad()
        out = model(x, mask_time_indices=mask, sampled_negative_indices=negatives, quantize_masked_only=masked_only)
        out.loss.backward()
        results.append((out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (full, full_grads), (fast, fast_grads) = results
    assert fast.projected_quantized_states is None and full.projected_quantized_states.shape[:2] == mask.shape
    for field in ("loss", "contrastive_loss", "diversity_loss", "code_perplexity", "prob_perplexity", "contrastive_accuracy"):
        torch.testing.assert_close(getattr(fast, field), getattr(full, field), rtol=1e-5, atol=1e-6, msg=field)
    assert full_grads.keys() == fast_grads.keys() and "quantizer.codevectors" in fast_grads
    for name, grad in full_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_a_distractor_with_the_positives_codewords_is_excluded():
    from w2v2.modeling.losses import contrastive_logits

    c = torch.randn(2, 4)
    q = torch.randn(3, 4)
    codes = torch.tensor([[0, 1], [0, 1], [2, 1]])  # rows 0 and 1 share their codewords
    logits = contrastive_logits(c, q, torch.tensor([0, 2]), torch.tensor([[1, 2], [0, 1]]), 0.1, codes=codes)
    assert logits.shape == (2, 3)
    assert torch.isinf(logits[0, 1]) and torch.isfinite(logits[0, 2]) and torch.isfinite(logits[1]).all()
    torch.testing.assert_close(logits[1, 0], torch.nn.functional.cosine_similarity(c[1], q[2], dim=0) / 0.1)


def test_outputs_report_the_fairseq_figures():
    torch.manual_seed(0)
    config = W2V2Config.tiny(feature_penalty_weight=10.0)
    model = W2V2ForPreTraining(config).train()
    out = model(_batch())
    G, V = config.num_codevector_groups, config.num_codevectors_per_group
    assert 0.0 <= out.contrastive_accuracy <= 1.0
    assert G <= out.code_perplexity <= G * V and G <= out.prob_perplexity <= G * V
    n = out.num_masked
    assert n == out.mask_time_indices.sum() and n > 0
    expected = (out.contrastive_loss + config.diversity_loss_weight * out.diversity_loss) / n + 10.0 * out.feature_penalty
    torch.testing.assert_close(out.loss, expected)
    # A fresh model guesses: L_m per frame is near ln(K + 1).
    assert abs(out.contrastive_loss.item() / n.item() - torch.log(torch.tensor(config.num_negatives + 1.0)).item()) < 1.0


def test_masks_are_reproducible_from_a_generator_on_the_input_device():
    model = W2V2ForPreTraining(W2V2Config.tiny()).eval()
    x = _batch()
    a = model(x, generator=torch.Generator().manual_seed(5))
    b = model(x, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.mask_time_indices, b.mask_time_indices)
    assert a.loss.item() == b.loss.item()


def test_save_and_load_through_auto_classes_keeps_outputs_and_temperature(tmp_path):
    torch.manual_seed(0)
    model = W2V2ForPreTraining(W2V2Config.tiny()).eval()
    model.set_gumbel_temperature(model.gumbel_temperature_at(100_000))
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert set(load_file(tmp_path / "model.safetensors")) == set(model.state_dict())
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "w2v2"

    assert isinstance(AutoConfig.from_pretrained(tmp_path), W2V2Config)
    loaded = AutoModelForPreTraining.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, W2V2ForPreTraining)
    assert loaded.quantizer.temperature == pytest.approx(2.0 * 0.999995**100_000)
    x = _batch()
    g = torch.Generator().manual_seed(0)
    mask, negatives = model.sample_masks(x, generator=g)
    with torch.no_grad():
        a = model(x, mask_time_indices=mask, sampled_negative_indices=negatives)
        b = loaded(x, mask_time_indices=mask, sampled_negative_indices=negatives)
    assert torch.equal(a.projected_states, b.projected_states)
    assert a.loss.item() == b.loss.item()

    # The encoder and a CTC model load from the same checkpoint (the CTC head is new).
    assert isinstance(AutoModel.from_pretrained(tmp_path), W2V2Model)
    ctc = AutoModelForCTC.from_pretrained(tmp_path)
    assert isinstance(ctc, W2V2ForCTC)
    torch.testing.assert_close(ctc.wav2vec2.encoder.layers[0].attention.q_proj.weight, model.wav2vec2.encoder.layers[0].attention.q_proj.weight)


def test_gumbel_temperature_schedule():
    config = W2V2Config.base()
    assert config.gumbel_temperature_at(0) == 2.0
    assert config.gumbel_temperature_at(10**6) == 0.5  # floor reached
    assert config.gumbel_temperature_at(1000) == pytest.approx(2.0 * 0.999995**1000)


@pytest.mark.parametrize(
    "field, value",
    [
        ("feat_extract_norm", "batch"),
        ("layerdrop", 1.2),
        ("mask_time_prob", -0.1),
        ("pretrain_mask_time_length", 0),
        ("num_negatives", 0),
        ("feature_grad_mult", -1.0),
        ("contrastive_logits_temperature", 0.0),
        ("min_gumbel_temperature", 0.0),
        ("gumbel_temperature_decay", 1.5),
        ("ctc_loss_reduction", "max"),
        ("hidden_size", 33),
        ("codevector_dim", 15),
        ("add_adapter", True),
        ("pad_token_id", 12),
        # issue 15, item 10: these were accepted and failed later inside torch
        ("conv_stride", (5, 2, 2, 2, 2, 2, 0)),
        ("conv_dim", (32, 32)),
        ("num_conv_pos_embedding_groups", 3),
        ("hidden_act", "swishh"),
        ("feat_extract_activation", "rleu"),
        ("num_codevectors_per_group", 0),
        ("squeeze_factor", 0),
    ],
)
def test_bad_configuration_values_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=rf"W2V2Config\.{field}="):
        W2V2Config.tiny(**{field: value})


def test_max_temperature_below_min_is_refused():
    with pytest.raises(ValueError, match="max_gumbel_temperature"):
        W2V2Config.tiny(max_gumbel_temperature=0.2, min_gumbel_temperature=0.5)


def test_presets_have_the_papers_sizes():
    assert sum(p.numel() for p in W2V2ForPreTraining(W2V2Config.base()).wav2vec2.parameters()) == pytest.approx(94.4e6, rel=0.01)
    assert W2V2Config.base().receptive_field == 400 and W2V2Config.base().inputs_to_logits_ratio == 320
    large = W2V2Config.large()
    assert large.do_stable_layer_norm and large.feat_extract_norm == "layer" and large.feature_penalty_weight == 0


def test_layerdrop_leaves_no_parameter_without_gradient():
    # DistributedDataParallel fails when a parameter gets no gradient (transformers#30113).
    torch.manual_seed(0)
    model = W2V2ForPreTraining(W2V2Config.tiny(layerdrop=0.99)).train()
    model(_batch()).loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


@pytest.mark.parametrize("kwargs", [None, {"use_reentrant": True}, {"use_reentrant": False}])
@pytest.mark.parametrize("frozen_feature_encoder", [False, True])
def test_gradient_checkpointing_gives_the_same_gradients(kwargs, frozen_feature_encoder):
    """transformers' machinery (GradientCheckpointingLayer): its kwargs reach every block, fewer
    activations are kept for backward, and the gradients are those of a plain run."""
    saved = []

    def grads(checkpointing):
        torch.manual_seed(0)
        model = W2V2ForCTC(W2V2Config.tiny()).train()
        if frozen_feature_encoder:
            model.freeze_feature_encoder()
        if checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            blocks = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
            assert len(blocks) == len(model.config.conv_dim) + model.config.num_hidden_layers
            assert all(b.gradient_checkpointing for b in blocks)
            assert all(b._gradient_checkpointing_func.keywords == (kwargs or {"use_reentrant": False}) for b in blocks)
        labels = torch.tensor([[1, 2, 3], [4, 5, -100]])
        count = [0]
        with torch.autograd.graph.saved_tensors_hooks(lambda t: count.__setitem__(0, count[0] + 1) or t, lambda t: t):
            loss = model(_batch(), labels=labels).loss
        saved.append(count[0])
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. torch's "None of the inputs have requires_grad=True"
            loss.backward()
        return {n: p.grad for n, p in model.named_parameters()}

    plain, checkpointed = grads(False), grads(True)
    assert saved[1] < saved[0] / 2, saved
    for name in plain:
        if plain[name] is None:
            assert frozen_feature_encoder and name.startswith("wav2vec2.feature_extractor") and checkpointed[name] is None
        else:
            torch.testing.assert_close(plain[name], checkpointed[name], msg=name)


def test_ctc_spec_augment_only_in_training_and_freeze_feature_encoder():
    torch.manual_seed(0)
    model = W2V2ForCTC(W2V2Config.tiny(mask_time_prob=0.5, mask_feature_prob=0.3, mask_feature_length=4))
    x = _batch()
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x).logits, model(x).logits)
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x).logits, model(x).logits)
    model.freeze_feature_encoder()
    labels = torch.tensor([[1, 2, 3], [4, 5, -100]])
    model(x, labels=labels).loss.backward()
    assert all(p.grad is None for p in model.wav2vec2.feature_extractor.parameters())
    assert model.lm_head.weight.grad is not None


def test_ctc_loss_is_blank_aware_and_refuses_out_of_vocabulary_labels():
    model = W2V2ForCTC(W2V2Config.tiny(ctc_loss_reduction="mean", ctc_zero_infinity=True)).eval()
    x = _batch()
    # An impossible target (longer than the frames) is zeroed, not infinite.
    long_labels = torch.ones(2, 200, dtype=torch.long)
    assert torch.isfinite(model(x, labels=long_labels).loss)
    with pytest.raises(ValueError, match="vocab_size=12"):
        model(x, labels=torch.tensor([[12]]))


def test_attention_weights_and_tuple_outputs():
    model = W2V2Model(W2V2Config.tiny()).eval()
    out = model(_batch(), output_attentions=True)
    assert len(out.attentions) == 2
    torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones_like(out.attentions[0].sum(-1)))
    as_tuple = model(_batch(), return_dict=False)
    torch.testing.assert_close(as_tuple[0], out.last_hidden_state)


@pytest.mark.parametrize(
    "inputs, message",
    [
        (lambda: (torch.randn(16000), None), r"shape \(16000,\).*input_values\[None\]"),
        (lambda: (torch.randn(2, 1, 16000), None), r"shape \(2, 1, 16000\).*squeeze\(1\)"),
        (lambda: ((torch.randn(2, 16000) * 3000).to(torch.int16), None), "dtype torch.int16; pass float samples"),
        (lambda: (torch.randn(2, 16000, dtype=torch.float64), None), "float64 and the model torch.float32"),
        (lambda: (torch.randn(2, 100), None), "100 samples, fewer than one frame"),
        (lambda: (torch.randn(2, 16000), torch.ones(2, 8000, dtype=torch.long)), r"attention_mask has shape \(2, 8000\)"),
        (lambda: (torch.randn(2, 16000).numpy(), None), "pass a torch tensor"),
    ],
    ids=["1-D", "3-D", "int16", "float64", "too short", "mask length", "numpy"],
)
def test_bad_inputs_are_refused_at_the_models_entry(inputs, message):
    # issue 15, item 8: a mask of another length masked every frame; the rest were raw torch errors
    model = W2V2ForCTC(W2V2Config.tiny(vocab_size=8)).eval()
    input_values, attention_mask = inputs()
    with pytest.raises((ValueError, TypeError), match=message):
        model(input_values, attention_mask=attention_mask)


def test_labels_longer_than_the_frames_are_counted_and_warned(caplog):
    # issue 15, item 9: such a label gave loss 0 silently through ctc_zero_infinity
    model = W2V2ForCTC(W2V2Config.tiny(vocab_size=8, mask_time_prob=0.0, ctc_zero_infinity=True)).eval()
    audio = torch.randn(2, 4000)  # 12 frames each
    frames = int(model._get_feat_extract_output_lengths(torch.tensor(4000)))
    fits = torch.tensor([[3, 4, 5, -100, -100, -100, -100, -100, -100, -100, -100, -100, -100]])
    # 7 tokens with 6 repeated pairs need 13 frames: one more than there are
    too_long = torch.tensor([[3, 3, 3, 3, 3, 3, 3, -100, -100, -100, -100, -100, -100]])
    assert frames == 12
    with caplog.at_level("WARNING"):
        model(audio, labels=torch.cat([fits, fits]))
        assert "need more frames" not in caplog.text
        out = model(audio, labels=torch.cat([fits, too_long]))
    assert "1 of 2 utterances in this batch need more frames than they have (up to 13 label frames for 12" in caplog.text
    assert "counted as 0 (ctc_zero_infinity)" in caplog.text
    assert model.impossible_alignments == 1 and torch.isfinite(out.loss)


def test_pretraining_eval_without_mask_is_unmasked_and_matches_transformers():
    """model.eval()(x): no mask, no loss, the same states on every call and those of transformers'
    Wav2Vec2ForPreTraining; a generator still asks for the masked pretraining loss."""
    torch.manual_seed(0)
    model = W2V2ForPreTraining(W2V2Config.tiny()).eval()
    x = 0.1 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(1))
    attention_mask = torch.ones(2, 16000, dtype=torch.long)
    attention_mask[1, 12000:] = 0
    with torch.no_grad():
        first, second = model(x, attention_mask=attention_mask), model(x, attention_mask=attention_mask)
        theirs = to_transformers(model).eval()(x, attention_mask=attention_mask)
        scored = model(x, generator=torch.Generator().manual_seed(0))
    assert first.loss is None and not first.mask_time_indices.any()
    torch.testing.assert_close(first.projected_states, second.projected_states, rtol=0, atol=0)
    torch.testing.assert_close(first.projected_states, theirs.projected_states, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(first.projected_quantized_states, theirs.projected_quantized_states, rtol=1e-4, atol=1e-5)
    assert scored.loss is not None and scored.mask_time_indices.float().mean() > 0.2


def test_squeeze_pools_by_real_frames_and_restores_the_frame_rate():
    from w2v2.modeling.components import Squeeze

    squeeze = Squeeze(hidden_size=2, factor=2)
    x = torch.tensor([[[1.0, 1.0], [3.0, 5.0], [7.0, 7.0]]])  # (B=1, T=3, D=2)
    pooled, mask = squeeze.pool(x, torch.tensor([[True, True, True]]))
    torch.testing.assert_close(pooled, torch.tensor([[[2.0, 3.0], [7.0, 7.0]]]))  # the odd last frame alone
    assert mask.tolist() == [[True, True]]
    pooled, mask = squeeze.pool(x, torch.tensor([[True, False, False]]))
    torch.testing.assert_close(pooled[0, 0], x[0, 0])  # padding is not averaged in
    assert mask.tolist() == [[True, False]]
    assert squeeze.unpool(pooled, 3).shape == (1, 3, 2)


@pytest.mark.parametrize("factor", [2, 3])
def test_squeezed_model_keeps_the_frame_rate_and_ignores_padding(factor):
    # Layer-norm encoders give every utterance of a padded batch what it gives alone.
    torch.manual_seed(0)
    config = W2V2Config.tiny(squeeze_factor=factor, feat_extract_norm="layer", do_stable_layer_norm=True)
    model = W2V2Model(config).eval()
    x = _batch(samples=8000)
    attention_mask = torch.ones(2, 8000, dtype=torch.long)
    attention_mask[1, 5000:] = 0
    with torch.no_grad():
        batch = model(x, attention_mask=attention_mask, output_hidden_states=True)
        alone = model(x[1:, :5000]).last_hidden_state
    frames = int(model._get_feat_extract_output_lengths(8000))
    assert batch.last_hidden_state.shape[1] == frames
    assert batch.hidden_states[-1].shape[1] == -(-frames // factor)  # the Transformer's own rate
    torch.testing.assert_close(batch.last_hidden_state[1, : alone.shape[1]], alone[0], atol=1e-5, rtol=1e-5)
    unsqueezed = W2V2Model(W2V2Config.tiny(feat_extract_norm="layer", do_stable_layer_norm=True))
    assert set(model.state_dict()) - set(unsqueezed.state_dict()) == {"squeeze.upsample.weight", "squeeze.upsample.bias"}


def test_squeezed_pretraining_learns_and_saves_but_does_not_convert_to_transformers(tmp_path):
    torch.manual_seed(0)
    model = W2V2ForPreTraining(W2V2Config.tiny(squeeze_factor=2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = _batch()
    mask, negatives = model.sample_masks(x, generator=torch.Generator().manual_seed(0))
    losses = []
    for _ in range(15):
        loss = model(x, mask_time_indices=mask, sampled_negative_indices=negatives).loss
        losses.append(loss.item())
        loss.backward()
        assert model.wav2vec2.squeeze.upsample.weight.grad.abs().sum() > 0
        optimizer.step()
        optimizer.zero_grad()
    assert losses[-1] < losses[0]
    model.save_pretrained(tmp_path)
    ctc = AutoModelForCTC.from_pretrained(tmp_path, vocab_size=8)
    torch.testing.assert_close(ctc.wav2vec2.squeeze.upsample.weight, model.wav2vec2.squeeze.upsample.weight)
    with pytest.raises(ValueError, match=r"squeeze_factor=2: .*save_format 'w2v2'"):
        to_transformers(ctc)
