"""W2V2Config: one typed configuration for every w2v2 model.

The field names are transformers' ``Wav2Vec2Config`` (this class extends it, so every field
there means the same thing here and state dicts copy one to one). On top of it come the
parts of fairseq's objective that transformers leaves out:

* ``feature_grad_mult``: scales the gradient that reaches the feature encoder f: X -> Z
  (fairseq's GradMultiply; 0.1 in the BASE recipe, 1.0 = plain backprop, 0.0 = frozen).
* ``feature_penalty_weight`` (beta): weight of the L2 penalty on the encoder features Z
  (fairseq's ``loss_weights[1]``: 10 for BASE, 0 for LARGE).
* the Gumbel temperature schedule tau(step) = max(min, max * decay**step) and its current
  value ``gumbel_temperature``, which is saved with the model so a checkpoint resumes with
  the temperature it had.
* the pretraining mask ``pretrain_mask_time_*``, kept apart from ``mask_time_*``, which in
  transformers (and here) is the SpecAugment mask of fine-tuning.

Mask probabilities use transformers' (and fairseq's) convention: ``mask_prob`` = p * M, the
expected number of *masked frames* before overlap, so the paper's p = 0.065 with M = 10 is
``mask_prob = 0.65`` and covers about 1 - (1 - p)**M = 49% of frames.
"""

import difflib
import json
from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import Wav2Vec2Config

from .conversion import config_values_from_transformers

__all__ = ["PRESETS", "W2V2Config"]

_HUB_KWARGS = ("cache_dir", "force_download", "proxies", "token", "revision", "local_files_only", "subfolder")

# The paper's feature encoder: 7 temporal convolutions, 512 channels, receptive field
# 400 samples (25 ms at 16 kHz), stride 320 samples (20 ms): 49 frames per second.
PAPER_CONV_DIM = (512,) * 7
PAPER_CONV_KERNEL = (10, 3, 3, 3, 3, 2, 2)
PAPER_CONV_STRIDE = (5, 2, 2, 2, 2, 2, 2)

# What BASE and LARGE share (fairseq's Wav2Vec2Config and pretraining yaml files).
PAPER_COMMON = dict(
    conv_dim=PAPER_CONV_DIM,
    conv_kernel=PAPER_CONV_KERNEL,
    conv_stride=PAPER_CONV_STRIDE,
    num_conv_pos_embeddings=128,
    num_conv_pos_embedding_groups=16,
    hidden_dropout=0.1,
    attention_dropout=0.1,
    activation_dropout=0.0,
    feat_proj_dropout=0.1,  # fairseq dropout_input
    feat_quantizer_dropout=0.1,  # fairseq dropout_features
    num_codevector_groups=2,  # G
    num_codevectors_per_group=320,  # V
    num_negatives=100,  # K
    contrastive_logits_temperature=0.1,  # kappa
    diversity_loss_weight=0.1,  # alpha
    max_gumbel_temperature=2.0,
    gumbel_temperature_decay=0.999995,
)
BASE = dict(
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    conv_bias=False,
    feat_extract_norm="group",
    do_stable_layer_norm=False,
    layerdrop=0.05,
    codevector_dim=256,
    proj_codevector_dim=256,
    feature_penalty_weight=10.0,  # beta
    feature_grad_mult=0.1,
    min_gumbel_temperature=0.5,
)
LARGE = dict(
    hidden_size=1024,
    num_hidden_layers=24,
    num_attention_heads=16,
    intermediate_size=4096,
    conv_bias=True,
    feat_extract_norm="layer",
    do_stable_layer_norm=True,
    # wav2vec2_large_librivox.yaml turns every dropout off.
    hidden_dropout=0.0,
    attention_dropout=0.0,
    feat_proj_dropout=0.0,
    feat_quantizer_dropout=0.0,
    layerdrop=0.0,
    codevector_dim=768,
    proj_codevector_dim=768,
    feature_penalty_weight=0.0,
    feature_grad_mult=1.0,
    min_gumbel_temperature=0.1,
)

# The CPU model of the "small" recipe: a 4-layer conv encoder with the paper's total stride
# of 320 samples (8 * 4 * 2 * 5; 20 ms frames) and a receptive field of 424 samples (paper: 400),
# whose large first stride and 32 channels halve the cost of the paper's first layers;
# a 4 x 128 pre-LN Transformer and 2 x 32 codevectors.
SMALL = dict(
    conv_dim=(32, 128, 128, 128),
    conv_kernel=(16, 8, 4, 5),
    conv_stride=(8, 4, 2, 5),
    conv_bias=True,
    feat_extract_norm="layer",
    do_stable_layer_norm=True,
    hidden_size=128,
    num_hidden_layers=4,
    num_attention_heads=4,
    intermediate_size=512,
    num_conv_pos_embeddings=64,
    num_conv_pos_embedding_groups=16,
    hidden_dropout=0.0,
    attention_dropout=0.0,
    activation_dropout=0.0,
    feat_proj_dropout=0.0,
    feat_quantizer_dropout=0.0,
    layerdrop=0.0,
    num_codevector_groups=2,
    num_codevectors_per_group=32,
    codevector_dim=128,
    proj_codevector_dim=128,
    num_negatives=20,
    contrastive_logits_temperature=0.1,
    diversity_loss_weight=0.1,
    feature_penalty_weight=0.0,
    feature_grad_mult=1.0,
    max_gumbel_temperature=2.0,
    min_gumbel_temperature=0.5,
    gumbel_temperature_decay=0.999,
    pretrain_mask_time_prob=0.65,
    pretrain_mask_time_length=4,
)


@strict
class W2V2Config(Wav2Vec2Config):
    r"""Configuration of :class:`W2V2Model`, :class:`W2V2ForPreTraining` and :class:`W2V2ForCTC`.

    Every field of ``transformers.Wav2Vec2Config`` is accepted with the same meaning. Added:

    feature_grad_mult (`float`, defaults to 1.0):
        Gradient multiplier on the feature encoder output. 0.0 stops the gradient entirely.
    feature_penalty_weight (`float`, defaults to 0.0):
        beta, the weight of the mean squared feature-encoder activations in the pretraining loss.
    max_gumbel_temperature, min_gumbel_temperature, gumbel_temperature_decay (`float`):
        The Gumbel-softmax temperature at update n is max(min, max * decay**n) (paper: 2, 0.5,
        0.999995 for BASE).
    gumbel_temperature (`float`, *optional*):
        The temperature the quantizer uses now. Defaults to ``max_gumbel_temperature``; the
        trainers update it every step and it is saved in ``config.json``.
    pretrain_mask_time_prob, pretrain_mask_time_length, pretrain_mask_time_min_masks:
        Span masking of the pretraining objective (paper: p * M = 0.65, M = 10, at least 2 spans).
        transformers has no such fields: an export of a pretraining model carries them into
        ``mask_time_*``, the fields its pretraining reads (``w2v2.conversion.config_to_transformers``).
    quantizer (`str`, defaults to ``"gumbel"``):
        Z -> Q of the pretraining objective: ``"gumbel"`` (wav2vec 2.0's Gumbel-softmax product
        quantizer) or ``"kmeans"`` (vq-wav2vec's nearest-codeword quantizer with a straight-through
        gradient: ``w2v2.modeling.components.KmeansVectorQuantizer``). transformers has only the first.
    kmeans_commitment_weight (`float`, defaults to 0.25), kmeans_loss_weight (`float`, defaults to 1.0):
        gamma of vq-wav2vec's commitment term, and the weight of its codebook + commitment loss
        in the pretraining loss (the paper adds it with weight 1). Read only with ``quantizer="kmeans"``.
    squeeze_factor (`int`, defaults to 1):
        s of SEW's squeeze (arXiv 2109.06870): the Transformer runs on the mean of every s frames
        of f's output and a linear layer expands its output back to the full frame rate
        (``w2v2.modeling.components.Squeeze``). 1 is wav2vec 2.0 as published; transformers'
        Wav2Vec2 classes have no squeeze, so a model with s > 1 does not convert to them.
    tokenizer_class (`str`, defaults to ``"W2V2CTCTokenizer"``):
        The tokenizer ``AutoTokenizer.from_pretrained(folder, config=config)`` builds when the
        folder has no tokenizer_config.json (transformers' CTC example takes this path when the
        config names a tokenizer class; its other path, ``tokenizer_type=config.model_type``,
        reads a table of transformers' own model types that ``w2v2`` is not in).

    Presets: :meth:`base` and :meth:`large` (the paper's BASE and LARGE), :meth:`tiny` (tests).
    """

    model_type = "w2v2"

    feature_grad_mult: float | int = 1.0
    feature_penalty_weight: float | int = 0.0
    max_gumbel_temperature: float | int = 2.0
    min_gumbel_temperature: float | int = 0.5
    gumbel_temperature_decay: float | int = 0.999995
    gumbel_temperature: float | int | None = None
    pretrain_mask_time_prob: float | int = 0.65
    pretrain_mask_time_length: int = 10
    pretrain_mask_time_min_masks: int = 2
    tokenizer_class: str | None = "W2V2CTCTokenizer"
    quantizer: str = "gumbel"
    kmeans_commitment_weight: float | int = 0.25
    kmeans_loss_weight: float | int = 1.0
    squeeze_factor: int = 1

    def __post_init__(self, **kwargs):
        if self.gumbel_temperature is None:
            self.gumbel_temperature = self.max_gumbel_temperature
        super().__post_init__(**kwargs)
        # Checked here so that a bad value raises a plain ValueError at construction; the
        # strict-dataclass validator below runs the same checks again at save time, and every
        # model runs them again when it is built (a field may have been set since).
        self.check_values()

    def validate_w2v2(self):
        self.check_values()

    # ------------------------------------------------------------------ validation
    def check_values(self):
        """Refuse values the models cannot run with; each error names field, value and fix."""
        self._check_architecture()
        self._check_objective()

    def _refuse(self, field: str, why: str, fix: str):
        raise ValueError(f"W2V2Config.{field}={getattr(self, field)!r} {why}; {fix}.")

    def _check_architecture(self):
        """The feature encoder, the Transformer and the quantizer's shapes."""
        refuse = self._refuse
        if self.feat_extract_norm not in ("group", "layer"):
            refuse("feat_extract_norm", "is not a known feature-encoder norm", "use 'group' (BASE) or 'layer' (LARGE)")
        if self.hidden_size % self.num_attention_heads != 0:
            refuse(
                "hidden_size",
                f"is not divisible by num_attention_heads={self.num_attention_heads}",
                "choose a hidden_size that is a multiple of the number of heads",
            )
        if self.codevector_dim % self.num_codevector_groups != 0:
            refuse(
                "codevector_dim",
                f"is not divisible by num_codevector_groups={self.num_codevector_groups}",
                "each of the G groups gets codevector_dim / G dimensions, so make it a multiple of G",
            )
        if not len(self.conv_dim) == len(self.conv_kernel) == len(self.conv_stride) >= 1:
            refuse("conv_dim", f"has {len(self.conv_dim)} layers, conv_kernel {len(self.conv_kernel)} and conv_stride "
                   f"{len(self.conv_stride)}", "give one entry per conv layer in all three")  # fmt: skip
        for field in ("conv_dim", "conv_kernel", "conv_stride"):
            if min(getattr(self, field)) < 1:
                refuse(field, "has an entry below 1", "every channel count, kernel and stride must be a positive integer")
        if self.hidden_size % self.num_conv_pos_embedding_groups != 0:
            refuse("num_conv_pos_embedding_groups", f"does not divide hidden_size={self.hidden_size}",
                   "the positional convolution is grouped over the hidden channels: choose a divisor")  # fmt: skip
        from transformers.activations import ACT2FN

        for field in ("hidden_act", "feat_extract_activation"):
            if isinstance(getattr(self, field), str) and getattr(self, field) not in ACT2FN:
                refuse(field, "is not a known activation", f"use one of {', '.join(sorted(ACT2FN)[:8])}, ... (transformers' ACT2FN)")
        for field in ("num_codevector_groups", "num_codevectors_per_group", "num_hidden_layers", "num_attention_heads", "squeeze_factor"):
            if getattr(self, field) < 1:
                refuse(field, "must be at least 1", "use a positive integer")

    def _check_objective(self):
        """Probabilities, masks, loss weights, the Gumbel schedule and the CTC head."""
        refuse = self._refuse
        for field in (
            "hidden_dropout",
            "activation_dropout",
            "attention_dropout",
            "feat_proj_dropout",
            "feat_quantizer_dropout",
            "final_dropout",
            "layerdrop",
            "mask_time_prob",
            "mask_feature_prob",
            "pretrain_mask_time_prob",
        ):
            if not 0.0 <= getattr(self, field) <= 1.0:
                refuse(field, "is not a probability", "use a value in [0, 1]")
        for field in ("mask_time_length", "mask_feature_length", "pretrain_mask_time_length", "num_negatives"):
            if getattr(self, field) < 1:
                refuse(field, "must be at least 1", "use a positive integer")
        for field in ("mask_time_min_masks", "mask_feature_min_masks", "pretrain_mask_time_min_masks"):
            if getattr(self, field) < 0:
                refuse(field, "is negative", "use 0 or more")
        if self.quantizer not in ("gumbel", "kmeans"):
            refuse("quantizer", "is not a known quantizer", "use 'gumbel' (wav2vec 2.0) or 'kmeans' (vq-wav2vec)")
        if self.quantizer == "kmeans" and self.conv_dim[-1] % self.num_codevector_groups != 0:
            refuse("quantizer", f"needs conv_dim[-1]={self.conv_dim[-1]} divisible by num_codevector_groups="
                   f"{self.num_codevector_groups} (its projection is grouped)", "change one of them")  # fmt: skip
        for field in ("feature_grad_mult", "feature_penalty_weight", "diversity_loss_weight", "kmeans_commitment_weight",
                      "kmeans_loss_weight"):
            if getattr(self, field) < 0:
                refuse(field, "is negative", "use 0 or a positive weight")
        if self.contrastive_logits_temperature <= 0:
            refuse("contrastive_logits_temperature", "must be positive (it is kappa, a divisor)", "the paper uses 0.1")
        if self.min_gumbel_temperature <= 0:
            refuse("min_gumbel_temperature", "must be positive", "the paper uses 0.5 (BASE) or 0.1 (LARGE)")
        if self.max_gumbel_temperature < self.min_gumbel_temperature:
            refuse(
                "max_gumbel_temperature",
                f"is below min_gumbel_temperature={self.min_gumbel_temperature}",
                "the schedule anneals from max down to min, so max must be >= min",
            )
        if not 0.0 < self.gumbel_temperature_decay <= 1.0:
            refuse("gumbel_temperature_decay", "is not in (0, 1]", "the paper uses 0.999995 per update")
        if self.gumbel_temperature is not None and self.gumbel_temperature <= 0:
            refuse("gumbel_temperature", "must be positive", "set it inside [min, max] of the schedule")
        if self.ctc_loss_reduction not in ("sum", "mean"):
            refuse("ctc_loss_reduction", "is not a CTC reduction", "use 'mean' or 'sum'")
        if self.add_adapter or self.adapter_attn_dim is not None:
            refuse(
                "add_adapter" if self.add_adapter else "adapter_attn_dim",
                "asks for adapter layers, which w2v2 does not implement",
                "use transformers' Wav2Vec2 classes for adapter models",
            )
        if self.vocab_size is not None and self.pad_token_id is not None and self.pad_token_id >= self.vocab_size:
            refuse("pad_token_id", f"is outside the vocabulary (vocab_size={self.vocab_size})", "the CTC blank must be a vocabulary id, usually 0")

    # ------------------------------------------------------------------ overrides
    @classmethod
    def overrides_from_json(cls, text: str | None) -> dict[str, Any]:
        """``--config_overrides``: a JSON object of config fields, each a field of this class.

        An unknown name (a typo would otherwise be stored in config.json and ignored) is refused
        with the closest field name.
        """
        if not text:
            return {}
        try:
            overrides = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"config_overrides={text!r} is not JSON ({error}); write e.g. '{{\"hidden_size\": 128}}'.") from None
        if not isinstance(overrides, dict):
            raise ValueError(f"config_overrides={text!r} must be a JSON object of config fields, e.g. '{{\"layerdrop\": 0.0}}'.")
        known = cls().to_dict()
        for name in overrides:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"did you mean {close[0]!r}?" if close else "see W2V2Config's fields"
                raise ValueError(f"config_overrides names {name!r}, which is not a W2V2Config field; {hint}")
        return overrides

    # ------------------------------------------------------------------ transformers' format
    @classmethod
    def from_any_pretrained(cls, path, **kwargs) -> tuple["W2V2Config | None", dict[str, Any]]:
        """Read the config at ``path`` (folder or Hub id). A transformers ``wav2vec2`` config
        becomes a ``W2V2Config`` (``w2v2.conversion.config_values_from_transformers``; config-field
        ``kwargs`` applied as ``from_pretrained`` would). Returns (the config, or None for a w2v2
        checkpoint, which loads as it is; the kwargs left for the model)."""
        config_dict, _ = cls.get_config_dict(path, **{k: kwargs[k] for k in _HUB_KWARGS if k in kwargs})
        if config_dict.get("model_type") != "wav2vec2":
            return None, kwargs
        return cls.from_dict(config_values_from_transformers(config_dict), return_unused_kwargs=True, **kwargs)

    # ------------------------------------------------------------------ schedule
    def gumbel_temperature_at(self, step: int) -> float:
        """tau(step) = max(tau_min, tau_max * decay**step), the paper's annealing per update."""
        return max(self.min_gumbel_temperature, self.max_gumbel_temperature * self.gumbel_temperature_decay**step)

    @property
    def receptive_field(self) -> int:
        """Samples seen by one output frame of the feature encoder (400 for the paper's)."""
        field = 1
        for kernel, stride in zip(reversed(self.conv_kernel), reversed(self.conv_stride)):
            field = (field - 1) * stride + kernel
        return field

    # ------------------------------------------------------------------ presets
    @classmethod
    def base(cls, **overrides) -> "W2V2Config":
        """The paper's BASE model with fairseq's LibriSpeech pretraining recipe (95 M parameters)."""
        return cls(**{**PAPER_COMMON, **BASE, **overrides})

    @classmethod
    def large(cls, **overrides) -> "W2V2Config":
        """The paper's LARGE model (317 M parameters): layer-norm encoder, pre-LN Transformer."""
        return cls(**{**PAPER_COMMON, **LARGE, **overrides})

    @classmethod
    def small(cls, **overrides) -> "W2V2Config":
        """The CPU model of ``w2v2-pretrain --recipe small`` (1.1 M parameters): learns in 20
        minutes on two cores (benchmarks/RESULTS.md, "Pretraining at CPU scale")."""
        return cls(**{**SMALL, **overrides})

    @classmethod
    def preset(cls, name: str, **overrides) -> "W2V2Config":
        """The preset ``name`` (one of ``PRESETS``: base, large, small, tiny) with ``overrides``;
        what ``w2v2-pretrain --recipe`` and ``w2v2-finetune --config_name`` look up."""
        if name not in PRESETS:
            raise ValueError(f"preset {name!r} is unknown; use one of {', '.join(PRESETS)} (or a config folder where one is accepted).")
        return getattr(cls, name)(**overrides)

    @classmethod
    def tiny(cls, **overrides) -> "W2V2Config":
        """A model of a few ten thousand parameters for unit tests: the paper's conv strides
        (so 320 samples per frame) with 32 channels, two 32-wide Transformer layers."""
        values = dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            conv_dim=(32,) * 7,
            conv_kernel=PAPER_CONV_KERNEL,
            conv_stride=PAPER_CONV_STRIDE,
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=2,
            num_codevector_groups=2,
            num_codevectors_per_group=8,
            codevector_dim=16,
            proj_codevector_dim=16,
            num_negatives=5,
            hidden_dropout=0.0,
            attention_dropout=0.0,
            activation_dropout=0.0,
            final_dropout=0.0,
            layerdrop=0.0,
            vocab_size=12,
        )
        values.update(overrides)
        return cls(**values)


PRESETS = ("base", "large", "small", "tiny")  # W2V2Config.<name>(**overrides)
