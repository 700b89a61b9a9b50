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

from dataclasses import asdict, dataclass

from ..configuration import W2V2Config
from ..processing.audio import SAMPLE_RATE

__all__ = ["PretrainRecipe", "RECIPES", "recipe_config", "recipe_help"]


@dataclass(frozen=True)
class PretrainRecipe:
    """One pretraining recipe: the model preset (``W2V2Config.<model>``) and the run's
    hyper-parameters, each the default of the ``w2v2-pretrain`` flag of the same name."""

    model: str  # a W2V2Config preset: base | large | small | tiny
    learning_rate: float
    warmup_updates: int
    max_updates: int
    batch_seconds: float  # audio per batch and process, after cropping
    gradient_accumulation_steps: int
    max_sample_size: int  # crop length, samples
    min_sample_size: int
    normalize: bool
    lr_scheduler: str = "polynomial"  # fairseq's polynomial decay, power 1
    pad: bool = False
    max_grad_norm: float = 0.0  # 0: no clipping (fairseq clip_norm 0)
    mixed_precision: str = "auto"  # bf16 where the device runs it faster, measured at the start (fairseq: fp16 on V100s)
    save_steps: int = 25_000
    logging_steps: int = 200
    health_patience: int = 5_000

    def flags(self) -> dict:
        """The hyper-parameters as ``PretrainArguments`` fields (everything but ``model``)."""
        return {k: v for k, v in asdict(self).items() if k != "model"}


# fairseq's two recipes share warmup, decay, crops, no clipping and their intervals (the defaults above).
RECIPES: dict[str, PretrainRecipe] = {
    "base": PretrainRecipe(
        model="base", learning_rate=5e-4, warmup_updates=32_000, max_updates=400_000,
        batch_seconds=1_400_000 / SAMPLE_RATE,  # fairseq max_tokens per GPU: 87.5 s
        gradient_accumulation_steps=64,  # 64 GPUs x update_freq 1
        max_sample_size=250_000, min_sample_size=32_000, normalize=False,
    ),
    "large": PretrainRecipe(
        model="large", learning_rate=5e-3, warmup_updates=32_000, max_updates=1_000_000,
        batch_seconds=1_200_000 / SAMPLE_RATE,  # 75 s
        gradient_accumulation_steps=128,  # 128 GPUs x update_freq 1
        max_sample_size=320_000, min_sample_size=32_000, normalize=True,
    ),
    "small": PretrainRecipe(
        model="small", learning_rate=2e-3, warmup_updates=100, max_updates=3_000,
        batch_seconds=24.0,  # 8 crops of 3 s
        gradient_accumulation_steps=1, max_sample_size=48_000, min_sample_size=16_000, normalize=True,
        max_grad_norm=10.0, save_steps=500, logging_steps=10, health_patience=400,
    ),
    "tiny": PretrainRecipe(
        model="tiny", learning_rate=1e-3, warmup_updates=2, max_updates=10, lr_scheduler="linear",
        batch_seconds=4.0, gradient_accumulation_steps=1, max_sample_size=16_000, min_sample_size=4_000,
        normalize=True, max_grad_norm=10.0,
        mixed_precision="no",  # tests compare exact figures
        save_steps=5, logging_steps=1, health_patience=1_000,
    ),
}  # fmt: skip


def recipe_config(name: str, **overrides) -> W2V2Config:
    """The model configuration of recipe ``name`` with ``overrides`` (W2V2Config fields)."""
    if name not in RECIPES:
        raise ValueError(f"recipe={name!r} is unknown; use one of {sorted(RECIPES)}.")
    return W2V2Config.preset(RECIPES[name].model, **overrides)


def recipe_help(field_name: str, text: str = "") -> str:
    """``text`` followed by each recipe's value of ``field_name``, for ``--help``."""
    values = ", ".join(f"{name} {getattr(recipe, field_name)!r}" for name, recipe in RECIPES.items())
    return f"{text + '; ' if text else ''}None takes --recipe's: {values}"
