"""transformers' own ``ModelTesterMixin`` and ``ConfigTester`` over the w2v2 classes.

``W2V2ModelTest`` runs every test of transformers' model mixin on ``W2V2Model``,
``W2V2ForPreTraining`` and ``W2V2ForCTC`` with a tiny configuration, and (``test_config``)
``ConfigTester.run_common_tests`` on ``W2V2Config``. The mixin tests that do not apply are
``SKIPPED``, each with its reason; the others skip themselves where they do not apply (flash
attention, accelerators, no ``_keep_in_fp32_modules``, ...), on transformers' classes alike.

``Wav2Vec2BaselineTest`` runs the same tester on transformers' ``Wav2Vec2*`` classes, only with
``W2V2_MIXIN_BASELINE=1``: a test that fails there too is a limitation of the harness, not a
w2v2 bug. Those it is known to fail are ``BASELINE_FAILURES`` (strict xfails). Its pretraining
model computes a loss only on a given mask, so its training tests get one
(``pretraining_mask_in_inputs``); W2V2ForPreTraining samples its own.
"""

import functools
import os
import re
import unittest

import pytest
import torch
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC, Wav2Vec2ForPreTraining, Wav2Vec2Model
from transformers_harness import mixin, register_model_names

from w2v2 import W2V2Config, W2V2ForCTC, W2V2ForPreTraining, W2V2Model, compute_span_mask, sample_negatives

ModelTesterMixin = mixin("test_modeling_common", "ModelTesterMixin")
ConfigTester = mixin("test_configuration_common", "ConfigTester")
floats_tensor = mixin("test_modeling_common", "floats_tensor")

# The mixin knows a model's kind (base model, CTC head, ...) by its class name in transformers'
# Auto tables, as it knows Wav2Vec2Model, Wav2Vec2ForPreTraining and Wav2Vec2ForCTC.
register_model_names(
    W2V2Config.model_type,
    MODEL_MAPPING_NAMES="W2V2Model",
    MODEL_FOR_PRETRAINING_MAPPING_NAMES="W2V2ForPreTraining",
    MODEL_FOR_CTC_MAPPING_NAMES="W2V2ForCTC",
)

BASELINE = os.environ.get("W2V2_MIXIN_BASELINE") == "1"
NO_EMBEDDINGS = "audio models read waveforms: there are no token embeddings to get or set"

# Mixin tests that do not apply to the w2v2 classes, with the reason (quoted by the README).
SKIPPED = {
    "test_model_get_set_embeddings": NO_EMBEDDINGS + " (fails on transformers' Wav2Vec2 classes too)",
}
# What transformers' own classes fail under this harness (its wav2vec2 tests override these).
BASELINE_FAILURES = {
    "test_model_get_set_embeddings": NO_EMBEDDINGS,
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Models this small run fastest on one thread (a second only adds synchronisation)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class W2V2ModelTester:
    """Tiny configurations and inputs, as transformers' per-model testers supply them to the mixin.

    ``config_class`` is W2V2Config or transformers' Wav2Vec2Config, built from the same sizes. Two
    conv layers (kernel 10 stride 5, kernel 4 stride 4: 20 samples per frame) turn
    ``num_samples`` = 400 into ``seq_length`` = 19 frames, the length of every hidden state.
    """

    def __init__(self, parent, config_class=W2V2Config, batch_size=2, num_samples=400, is_training=True):
        self.parent = parent
        self.config_class = config_class
        self.batch_size = batch_size
        self.num_samples = num_samples
        self.is_training = is_training
        self.hidden_size = 16
        self.num_hidden_layers = 2
        self.num_attention_heads = 2
        self.vocab_size = 12
        self.sizes = dict(
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=20,
            conv_dim=(16, 16),
            conv_kernel=(10, 4),
            conv_stride=(5, 4),
            num_conv_pos_embeddings=8,
            num_conv_pos_embedding_groups=2,
            num_codevector_groups=2,  # G
            num_codevectors_per_group=4,  # V
            codevector_dim=8,
            proj_codevector_dim=8,
            num_negatives=4,  # K
            mask_time_length=2,
            vocab_size=self.vocab_size,
            hidden_dropout=0.0,
            attention_dropout=0.0,
            activation_dropout=0.0,
            feat_proj_dropout=0.0,
            feat_quantizer_dropout=0.0,
            final_dropout=0.0,
            layerdrop=0.0,
        )
        self.seq_length = self.frames(num_samples)  # T = 19: hidden states (B, T, D), attentions (B, H, T, T), CTC labels (B, T)

    def frames(self, samples: int) -> int:
        """Frames of the feature encoder for ``samples`` samples."""
        for kernel, stride in zip(self.sizes["conv_kernel"], self.sizes["conv_stride"]):
            samples = (samples - kernel) // stride + 1
        return samples

    def pretraining_mask(self):
        """A pretraining mask (B, T) over the real frames, and K distractors per frame (B, T, K)."""
        real = torch.tensor([self.frames(self.num_samples)] * (self.batch_size - 1) + [self.frames(self.num_samples // 2)])
        frame_mask = torch.arange(self.seq_length)[None, :] < real[:, None]  # (B, T)
        generator = torch.Generator().manual_seed(0)
        mask = compute_span_mask((self.batch_size, self.seq_length), 0.5, 2, min_masks=2, attention_mask=frame_mask, generator=generator)
        return mask, sample_negatives(mask, self.sizes["num_negatives"], generator=generator)

    def get_config(self):
        return self.config_class(**self.sizes)

    def prepare_config_and_inputs(self):
        input_values = floats_tensor([self.batch_size, self.num_samples], scale=1.0)  # (B, S)
        attention_mask = torch.ones(self.batch_size, self.num_samples, dtype=torch.long)  # (B, S)
        attention_mask[-1, self.num_samples // 2 :] = 0  # the last utterance is half padding
        input_values[-1, self.num_samples // 2 :] = 0.0
        return self.get_config(), input_values, attention_mask

    def prepare_config_and_inputs_for_common(self):
        config, input_values, attention_mask = self.prepare_config_and_inputs()
        return config, {"input_values": input_values, "attention_mask": attention_mask}


def _skipped(reasons: dict[str, str]):
    """Class decorator: each test named in ``reasons`` is skipped with its reason."""

    def apply(cls):
        for name, reason in reasons.items():
            setattr(cls, name, unittest.skip(reason)(lambda self: None))
        return cls

    return apply


def _known_failures(reasons: dict[str, str]):
    """Class decorator: each test named in ``reasons`` is a strict xfail (it must still fail)."""

    def apply(cls):
        for name, reason in reasons.items():
            test = getattr(cls, name)
            setattr(cls, name, pytest.mark.xfail(reason=reason, strict=True)(functools.wraps(test)(lambda self, test=test: test(self))))
        return cls

    return apply


class _ModelTestBase(ModelTesterMixin):
    """The mixin with our tester; a subclass names the model classes and their config class."""

    config_class = W2V2Config
    test_resize_embeddings = False  # no token embeddings
    test_can_init_all_missing_weights_before_2023 = True  # run it: every weight has its initialisation
    pretraining_mask_in_inputs = False  # give the pretraining model a mask and distractors in training tests

    def setUp(self):
        self.model_tester = W2V2ModelTester(self, config_class=self.config_class)
        # hidden_size=48: a non-default value that the default 12 heads and 16 conv groups divide
        self.config_tester = ConfigTester(self, config_class=self.config_class, hidden_size=48)

    def test_config(self):
        self.config_tester.run_common_tests()

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if return_labels and self.pretraining_mask_in_inputs and "ForPreTraining" in model_class.__name__:
            inputs["mask_time_indices"], inputs["sampled_negative_indices"] = self.model_tester.pretraining_mask()
        return inputs


@_skipped(SKIPPED)
class W2V2ModelTest(_ModelTestBase, unittest.TestCase):
    all_model_classes = (W2V2Model, W2V2ForPreTraining, W2V2ForCTC)
    config_class = W2V2Config


@unittest.skipUnless(BASELINE, "baseline on transformers' Wav2Vec2 classes: set W2V2_MIXIN_BASELINE=1")
@_known_failures(BASELINE_FAILURES)
class Wav2Vec2BaselineTest(_ModelTestBase, unittest.TestCase):
    all_model_classes = (Wav2Vec2Model, Wav2Vec2ForPreTraining, Wav2Vec2ForCTC)
    config_class = Wav2Vec2Config
    pretraining_mask_in_inputs = True


# ----------------------------------------------------------------------------- w2v2 regressions
# A config changed after construction is checked when a model is built (issue item), and the
# k-means quantizer runs in half precision (found by running the mixin with quantizer="kmeans").
@pytest.mark.parametrize("model_class", [W2V2Model, W2V2ForPreTraining, W2V2ForCTC])
@pytest.mark.parametrize(
    "field, value, fix",
    [("add_adapter", True, "use transformers' Wav2Vec2 classes for adapter models"),
     ("hidden_size", 33, "choose a hidden_size that is a multiple of the number of heads")],
)  # fmt: skip
def test_config_changed_after_construction_is_checked_when_a_model_is_built(model_class, field, value, fix):
    config = W2V2Config.tiny()
    setattr(config, field, value)  # accepted: the fields are checked together, not one at a time
    with pytest.raises(ValueError, match=rf"^W2V2Config\.{field}={value!r} .*; {re.escape(fix)}\.$") as error:
        model_class(config)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_kmeans_quantizer_runs_in_half_precision(dtype):
    # The mixin's eager/SDPA tests load models in fp16 and bf16; the quantizer's fp32 group norm
    # met half-precision affine parameters there ("mixed dtype (CPU)").
    torch.manual_seed(0)
    model = W2V2ForPreTraining(W2V2Config.tiny(quantizer="kmeans")).to(dtype).eval()
    out = model(0.1 * torch.randn(2, 1600).to(dtype))
    assert out.projected_quantized_states.dtype == dtype and torch.isfinite(out.projected_quantized_states).all()
