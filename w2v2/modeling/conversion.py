"""Moving checkpoints between w2v2 and transformers' ``Wav2Vec2*`` classes.

Parameter names are the same on both sides, so conversion is a matter of configuration:
``W2V2Config`` extends ``Wav2Vec2Config`` with the fields of fairseq's objective, which a
transformers model simply does not have (see ``w2v2.configuration``). The one parameter that
may differ is ``masked_spec_embed``: w2v2 always has it (pretraining needs it), transformers
only when SpecAugment is on.
"""

import dataclasses

from transformers import PreTrainedModel, Wav2Vec2Config, Wav2Vec2ForCTC, Wav2Vec2ForPreTraining, Wav2Vec2Model

from ..configuration import W2V2Config

__all__ = ["to_transformers", "from_transformers", "load_config_any", "config_to_transformers"]

_HUB_KWARGS = ("cache_dir", "force_download", "proxies", "token", "revision", "local_files_only", "subfolder")
_OUR_FIELDS = {f.name for f in dataclasses.fields(W2V2Config)} - {f.name for f in dataclasses.fields(Wav2Vec2Config)}
_METADATA = ("model_type", "architectures", "transformers_version", "_name_or_path")


def _pairs():
    from .models import W2V2ForCTC, W2V2ForPreTraining, W2V2Model

    return {W2V2Model: Wav2Vec2Model, W2V2ForPreTraining: Wav2Vec2ForPreTraining, W2V2ForCTC: Wav2Vec2ForCTC}


def load_config_any(path, **kwargs):
    """Read the config at ``path`` (directory or Hub id). A transformers ``wav2vec2`` config
    becomes a ``W2V2Config``; config-field kwargs are applied as ``from_pretrained`` would.
    Returns (config or None for a native w2v2 checkpoint, the kwargs left for the model)."""
    hub_kwargs = {k: kwargs[k] for k in _HUB_KWARGS if k in kwargs}
    config_dict, _ = W2V2Config.get_config_dict(path, **hub_kwargs)
    if config_dict.get("model_type") != "wav2vec2":
        return None, kwargs
    values = {k: v for k, v in config_dict.items() if k not in _METADATA}
    if config_dict.get("architectures"):
        values["architectures"] = [a.replace("Wav2Vec2", "W2V2") for a in config_dict["architectures"]]
    return W2V2Config.from_dict(values, return_unused_kwargs=True, **kwargs)


def config_to_transformers(config: W2V2Config) -> Wav2Vec2Config:
    """The transformers configuration of the same architecture (fairseq-only fields dropped)."""
    values = {k: v for k, v in config.to_dict().items() if k not in _OUR_FIELDS and k not in _METADATA}
    return Wav2Vec2Config(**values)


def to_transformers(model: PreTrainedModel) -> PreTrainedModel:
    """Return the transformers ``Wav2Vec2Model``/``Wav2Vec2ForPreTraining``/``Wav2Vec2ForCTC``
    with this model's weights (on the same device and dtype), for people who only have
    transformers installed. The Gumbel temperature is carried over."""
    pairs = _pairs()
    if type(model) not in pairs:
        raise TypeError(f"to_transformers() takes a W2V2Model, W2V2ForPreTraining or W2V2ForCTC, not {type(model).__name__}.")
    config = config_to_transformers(model.config)
    param = next(model.parameters())
    target = pairs[type(model)](config).to(device=param.device, dtype=param.dtype)
    state = model.state_dict()
    theirs = target.state_dict()
    state = {k: v for k, v in state.items() if k in theirs or not k.endswith("masked_spec_embed")}
    missing, unexpected = target.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"to_transformers: parameters do not line up (missing {missing}, unexpected {unexpected}).")
    if isinstance(target, Wav2Vec2ForPreTraining):
        target.set_gumbel_temperature(model.config.gumbel_temperature)
    return target.train(model.training)


def from_transformers(model: PreTrainedModel, cls=None) -> PreTrainedModel:
    """The w2v2 model (of class ``cls``, default: the twin of ``model``'s class) with the
    weights of a transformers ``Wav2Vec2*`` model."""
    pairs = {theirs: ours for ours, theirs in _pairs().items()}
    cls = cls or pairs.get(type(model))
    if cls is None:
        raise TypeError(f"from_transformers() takes a Wav2Vec2Model, Wav2Vec2ForPreTraining or Wav2Vec2ForCTC, not {type(model).__name__}.")
    values = {k: v for k, v in model.config.to_dict().items() if k not in _METADATA}
    if isinstance(model, Wav2Vec2ForPreTraining):
        values["gumbel_temperature"] = float(model.quantizer.temperature)
    config = W2V2Config(**values)
    param = next(model.parameters())
    ours = cls(config).to(device=param.device, dtype=param.dtype)
    missing, unexpected = ours.load_state_dict(model.state_dict(), strict=False)
    missing = [k for k in missing if not k.endswith("masked_spec_embed")]
    # A pretraining model loaded into a CTC twin keeps a new head, as from_pretrained does.
    missing = [k for k in missing if not k.startswith("lm_head.")]
    unexpected = [k for k in unexpected if not k.startswith(("quantizer.", "project_hid.", "project_q."))]
    if missing or unexpected:
        raise RuntimeError(f"from_transformers: parameters do not line up (missing {missing}, unexpected {unexpected}).")
    return ours.train(model.training)
