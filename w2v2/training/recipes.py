"""Pretraining recipes: model configuration and run hyper-parameters, selected by name.

``base`` and ``large`` are fairseq's ``wav2vec2_base_librispeech.yaml`` and
``wav2vec2_large_librivox.yaml`` (see REFERENCE.md). fairseq counts a batch in samples per GPU
(``max_tokens``) and runs 64 (BASE) or 128 (LARGE) GPUs with ``update_freq`` 1; here
``batch_seconds`` is that budget per process and ``gradient_accumulation_steps`` makes up the
GPUs: on k processes set it to 64/k (BASE) or 128/k (LARGE) to keep the paper's batch.
fairseq does not clip gradients in either recipe (``clip_norm`` 0).

``small`` is the recipe found by experiment to learn on 2 CPU cores within 20 minutes
(benchmarks/RESULTS.md, "Pretraining at CPU scale"); ``tiny`` is for unit tests.
"""

from __future__ import annotations

from ..configuration import W2V2Config

__all__ = ["RECIPES", "recipe_config"]

SAMPLING_RATE = 16_000

# What fairseq's two pretraining recipes share: warmup, decay, crops, no clipping, intervals.
_FAIRSEQ = dict(
    warmup_updates=32_000,
    lr_scheduler="polynomial",
    min_sample_size=32_000,
    pad=False,
    max_grad_norm=0.0,
    mixed_precision="auto",  # bf16 where the device runs it faster (fairseq: fp16 on V100s)
    save_steps=25_000,
    logging_steps=200,
    health_patience=5_000,
)

RECIPES: dict[str, dict] = {
    "base": dict(
        _FAIRSEQ,
        config=W2V2Config.base,
        learning_rate=5e-4,
        max_updates=400_000,
        batch_seconds=1_400_000 / SAMPLING_RATE,  # fairseq max_tokens per GPU: 87.5 s
        gradient_accumulation_steps=64,  # 64 GPUs x update_freq 1
        max_sample_size=250_000,
        normalize=False,
    ),
    "large": dict(
        _FAIRSEQ,
        config=W2V2Config.large,
        learning_rate=5e-3,
        max_updates=1_000_000,
        batch_seconds=1_200_000 / SAMPLING_RATE,  # 75 s
        gradient_accumulation_steps=128,  # 128 GPUs x update_freq 1
        max_sample_size=320_000,
        normalize=True,
    ),
    "small": dict(
        config=lambda **o: W2V2Config(**{**SMALL_MODEL, **o}),
        learning_rate=2e-3,
        warmup_updates=100,
        max_updates=3_000,
        lr_scheduler="polynomial",
        batch_seconds=24.0,  # 8 crops of 3 s
        gradient_accumulation_steps=1,
        max_sample_size=48_000,
        min_sample_size=16_000,
        normalize=True,
        pad=False,
        max_grad_norm=10.0,
        mixed_precision="auto",  # measured at the start of the run: bf16 only where it is faster
        save_steps=500,
        logging_steps=10,
        health_patience=400,
    ),
    "tiny": dict(
        config=W2V2Config.tiny,
        learning_rate=1e-3,
        warmup_updates=2,
        max_updates=10,
        lr_scheduler="linear",
        batch_seconds=4.0,
        gradient_accumulation_steps=1,
        max_sample_size=16_000,
        min_sample_size=4_000,
        normalize=True,
        pad=False,
        max_grad_norm=10.0,
        mixed_precision="no",  # tests compare exact figures
        save_steps=5,
        logging_steps=1,
        health_patience=1_000,
    ),
}

# The CPU model of the "small" recipe: a 4-layer conv encoder with the paper's total stride
# of 320 samples (8 * 4 * 2 * 5; 20 ms frames) and a receptive field of 424 samples (paper: 400),
# whose large first stride and 32 channels halve the cost of the paper's first layers;
# a 4 x 128 pre-LN Transformer and 2 x 32 codevectors.
SMALL_MODEL = dict(
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


def recipe_config(name: str, **overrides) -> W2V2Config:
    """The model configuration of recipe ``name`` with ``overrides`` (W2V2Config fields)."""
    if name not in RECIPES:
        raise ValueError(f"recipe={name!r} is unknown; use one of {sorted(RECIPES)}.")
    return RECIPES[name]["config"](**overrides)
