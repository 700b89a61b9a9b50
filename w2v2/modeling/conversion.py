"""Moving checkpoints between w2v2 and transformers' ``Wav2Vec2*`` classes.

Parameter names are the same on both sides, so conversion is a matter of configuration:
``W2V2Config`` extends ``Wav2Vec2Config`` with the fields of fairseq's objective, which a
transformers model simply does not have (see ``w2v2.configuration``). The one parameter that
may differ is ``masked_spec_embed``: w2v2 always has it (pretraining needs it), transformers
only when SpecAugment is on.

A transformers config written here keeps w2v2's extra fields (transformers keeps unknown
config keys as attributes and ignores them), so a model exported with ``to_transformers`` and
loaded back with ``W2V2*.from_pretrained`` has every w2v2 setting it had. The class names a
config mentions are swapped with their twins (``CLASS_TWINS``) in both directions.
"""

import dataclasses

from transformers import PreTrainedModel, Wav2Vec2Config, Wav2Vec2ForCTC, Wav2Vec2ForPreTraining, Wav2Vec2Model

from ..configuration import W2V2Config

__all__ = ["to_transformers", "from_transformers", "load_config_any", "config_to_transformers"]

_HUB_KWARGS = ("cache_dir", "force_download", "proxies", "token", "revision", "local_files_only", "subfolder")
_OUR_FIELDS = {f.name for f in dataclasses.fields(W2V2Config)} - {f.name for f in dataclasses.fields(Wav2Vec2Config)}
_METADATA = ("model_type", "architectures", "transformers_version", "_name_or_path")
# w2v2 class -> its transformers twin; also the names written in processor and tokenizer files
CLASS_TWINS = {
    "W2V2Model": "Wav2Vec2Model",
    "W2V2ForPreTraining": "Wav2Vec2ForPreTraining",
    "W2V2ForCTC": "Wav2Vec2ForCTC",
    "W2V2FeatureExtractor": "Wav2Vec2FeatureExtractor",
    "W2V2CTCTokenizer": "Wav2Vec2CTCTokenizer",
    "W2V2Processor": "Wav2Vec2Processor",
    "W2V2ProcessorWithLM": "Wav2Vec2ProcessorWithLM",
}
_OURS_OF = {theirs: ours for ours, theirs in CLASS_TWINS.items()}


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
        values["architectures"] = [_OURS_OF.get(a, a) for a in config_dict["architectures"]]
    return W2V2Config.from_dict(_with_our_tokenizer(values), return_unused_kwargs=True, **kwargs)


def _with_our_tokenizer(values: dict) -> dict:
    """A transformers config's values with w2v2's tokenizer named where it names transformers'
    twin or none (W2V2Config's default then applies)."""
    name = values.pop("tokenizer_class", None)
    return {**values, "tokenizer_class": _OURS_OF.get(name, name)} if name else values


def config_to_transformers(config: W2V2Config, *, pretraining: bool = False, w2v2_fields: bool = True) -> Wav2Vec2Config:
    """The transformers configuration of the same architecture.

    Args:
        pretraining: the config of a model to pretrain further. transformers' pretraining
            (``Wav2Vec2ForPreTraining`` and its example script) masks with ``mask_time_*``, which
            in w2v2 is fine-tuning's SpecAugment (0.05 by default): here it becomes w2v2's
            ``pretrain_mask_time_*`` (p * M = 0.65, M = 10), so pretraining continues with the
            mask it had. ``apply_spec_augment`` is turned on, since transformers drops a given
            mask without it (w2v2 applies the pretraining mask regardless; channel masking stays off then).
        w2v2_fields: keep w2v2's own fields (``feature_grad_mult``, ``pretrain_mask_time_prob``, ...)
            as extra keys, which transformers ignores and ``W2V2*.from_pretrained`` reads back.
    """
    values = {k: v for k, v in config.to_dict().items() if k not in _METADATA and (w2v2_fields or k not in _OUR_FIELDS)}
    values["tokenizer_class"] = CLASS_TWINS.get(config.tokenizer_class, config.tokenizer_class)
    if pretraining:
        values.update(mask_time_prob=config.pretrain_mask_time_prob, mask_time_length=config.pretrain_mask_time_length,
                      mask_time_min_masks=config.pretrain_mask_time_min_masks, apply_spec_augment=True)  # fmt: skip
        if not config.apply_spec_augment:
            values["mask_feature_prob"] = 0.0
    return Wav2Vec2Config(**values)


def to_transformers(model: PreTrainedModel) -> PreTrainedModel:
    """Return the transformers ``Wav2Vec2Model``/``Wav2Vec2ForPreTraining``/``Wav2Vec2ForCTC``
    with this model's weights (on the same device and dtype), for people who only have
    transformers installed. The Gumbel temperature is carried over; a pretraining model's
    config masks as w2v2's pretraining did (``config_to_transformers(pretraining=True)``)."""
    pairs = _pairs()
    if type(model) not in pairs:
        raise TypeError(f"to_transformers() takes a W2V2Model, W2V2ForPreTraining or W2V2ForCTC, not {type(model).__name__}.")
    from .models import W2V2ForPreTraining

    if isinstance(model, W2V2ForPreTraining) and model.config.quantizer != "gumbel":
        raise ValueError(f"W2V2Config.quantizer={model.config.quantizer!r}: transformers' Wav2Vec2ForPreTraining has only the "
                         "Gumbel quantizer; convert the W2V2Model (model.wav2vec2) or a fine-tuned W2V2ForCTC instead.")
    config = config_to_transformers(model.config, pretraining=isinstance(model, W2V2ForPreTraining))
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
    values = _with_our_tokenizer({k: v for k, v in model.config.to_dict().items() if k not in _METADATA})
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
