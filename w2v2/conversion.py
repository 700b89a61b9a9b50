"""Conversion between w2v2 and transformers' ``Wav2Vec2*`` formats, both ways, in one place:
class names, configs, weights and processor files.

This module imports nothing of w2v2 (it sits below ``configuration``), so every layer that
converts calls it and it calls none of them back: ``W2V2Config.from_pretrained`` reads a
transformers config through :func:`config_values_from_transformers`, the models' ``from_transformers``
load weights through :func:`load_transformers_weights`, and the folder export
(``w2v2.transformers_export.export_transformers``) writes with :func:`to_transformers` and
:func:`processor_file_to_transformers`.

Parameter names are the same on both sides, so converting a model is a matter of its
configuration: ``W2V2Config`` extends ``Wav2Vec2Config`` with the fields of fairseq's objective,
which a transformers model does not have. A transformers config written here keeps those
fields as keys transformers ignores, so a round trip keeps every w2v2 setting. Class names are
swapped with their twins (:data:`CLASS_TWINS`) both ways.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import transformers
from transformers import PreTrainedModel, Wav2Vec2Config

__all__ = ["CLASS_TWINS", "OURS_OF", "config_to_transformers", "config_values_from_transformers", "load_transformers_weights",
           "processor_file_to_transformers", "to_transformers", "without_transformers_twin"]  # fmt: skip

# w2v2 class -> its transformers twin: the names a config, processor or tokenizer file mentions
# are swapped with these when a folder moves between the two formats (both directions).
CLASS_TWINS = {
    "W2V2Model": "Wav2Vec2Model",
    "W2V2ForPreTraining": "Wav2Vec2ForPreTraining",
    "W2V2ForCTC": "Wav2Vec2ForCTC",
    "W2V2FeatureExtractor": "Wav2Vec2FeatureExtractor",
    "W2V2CTCTokenizer": "Wav2Vec2CTCTokenizer",
    "W2V2Processor": "Wav2Vec2Processor",
    "W2V2ProcessorWithLM": "Wav2Vec2ProcessorWithLM",
}
OURS_OF = {theirs: ours for ours, theirs in CLASS_TWINS.items()}  # transformers class -> its w2v2 twin
MODEL_CLASSES = ("W2V2Model", "W2V2ForPreTraining", "W2V2ForCTC")  # the classes with weights
_METADATA = ("model_type", "architectures", "transformers_version", "_name_or_path")  # not carried across formats
# keys of a transformers pretraining checkpoint that a w2v2 model without the objective leaves out
_PRETRAINING_ONLY_PREFIXES = ("quantizer.", "project_hid.", "project_q.")


# ---------------------------------------------------------------------------------- config
def config_values_from_transformers(config_dict: dict[str, Any]) -> dict[str, Any]:
    """The ``W2V2Config`` values of a transformers ``Wav2Vec2Config`` dict: its fields (and w2v2's
    extra keys, if a w2v2 export wrote them) with the class names of ``architectures`` and
    ``tokenizer_class`` swapped for their w2v2 twins; metadata (model_type, versions) dropped."""
    values = {k: v for k, v in config_dict.items() if k not in _METADATA}
    if config_dict.get("architectures"):
        values["architectures"] = [OURS_OF.get(a, a) for a in config_dict["architectures"]]
    name = values.pop("tokenizer_class", None)
    if name:  # else W2V2Config's default applies
        values["tokenizer_class"] = OURS_OF.get(name, name)
    return values


def config_to_transformers(config, *, pretraining: bool = False, w2v2_fields: bool = True) -> Wav2Vec2Config:
    """The transformers ``Wav2Vec2Config`` of the same architecture as ``config`` (a ``W2V2Config``).

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
    ours = {f.name for f in dataclasses.fields(config)} - {f.name for f in dataclasses.fields(Wav2Vec2Config)}
    values = {k: v for k, v in config.to_dict().items() if k not in _METADATA and (w2v2_fields or k not in ours)}
    values["tokenizer_class"] = CLASS_TWINS.get(config.tokenizer_class, config.tokenizer_class)
    if pretraining:
        values.update(mask_time_prob=config.pretrain_mask_time_prob, mask_time_length=config.pretrain_mask_time_length,
                      mask_time_min_masks=config.pretrain_mask_time_min_masks, apply_spec_augment=True)  # fmt: skip
        if not config.apply_spec_augment:
            values["mask_feature_prob"] = 0.0
    return Wav2Vec2Config(**values)


def without_transformers_twin(config) -> str | None:
    """Why transformers' Wav2Vec2 classes cannot hold a model of ``config`` (a ``W2V2Config``), or None."""
    if config.squeeze_factor != 1:
        return f"squeeze_factor={config.squeeze_factor}: transformers' Wav2Vec2 classes have no squeeze"
    return None


# ---------------------------------------------------------------------------------- weights
def to_transformers(model: PreTrainedModel) -> PreTrainedModel:
    """Return the transformers ``Wav2Vec2Model``/``Wav2Vec2ForPreTraining``/``Wav2Vec2ForCTC``
    with this model's weights (on the same device and dtype), for people who only have
    transformers installed. The Gumbel temperature is carried over; a pretraining model's
    config masks as w2v2's pretraining did (``config_to_transformers(pretraining=True)``)."""
    name = type(model).__name__
    if name not in MODEL_CLASSES:
        raise TypeError(f"to_transformers() takes a W2V2Model, W2V2ForPreTraining or W2V2ForCTC, not {name}.")
    pretraining = name == "W2V2ForPreTraining"
    if reason := without_transformers_twin(model.config):
        raise ValueError(f"W2V2Config.{reason}; keep this model in w2v2's format (save_format 'w2v2').")
    if pretraining and model.config.quantizer != "gumbel":
        raise ValueError(f"W2V2Config.quantizer={model.config.quantizer!r}: transformers' Wav2Vec2ForPreTraining has only the "
                         "Gumbel quantizer; convert the W2V2Model (model.wav2vec2) or a fine-tuned W2V2ForCTC instead.")
    config = config_to_transformers(model.config, pretraining=pretraining)
    param = next(model.parameters())
    target = getattr(transformers, CLASS_TWINS[name])(config).to(device=param.device, dtype=param.dtype)
    theirs = target.state_dict()
    # w2v2 always has masked_spec_embed (pretraining needs it), transformers only with SpecAugment on
    state = {k: v for k, v in model.state_dict().items() if k in theirs or not k.endswith("masked_spec_embed")}
    missing, unexpected = target.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"to_transformers: parameters do not line up (missing {missing}, unexpected {unexpected}).")
    if pretraining:
        target.set_gumbel_temperature(model.config.gumbel_temperature)
    return target.train(model.training)


def load_transformers_weights(ours: PreTrainedModel, theirs: PreTrainedModel) -> PreTrainedModel:
    """Copy the weights of a transformers ``Wav2Vec2*`` model into the w2v2 model ``ours`` (built
    from ``config_values_from_transformers`` of its config) and return ``ours`` in ``theirs``' mode.
    Keys only one side has by design are allowed: ``masked_spec_embed`` (w2v2 always has it),
    a new CTC head, and the pretraining objective's parts when ``ours`` has no objective."""
    missing, unexpected = ours.load_state_dict(theirs.state_dict(), strict=False)
    missing = [k for k in missing if not k.endswith("masked_spec_embed") and not k.startswith("lm_head.")]
    unexpected = [k for k in unexpected if not k.startswith(_PRETRAINING_ONLY_PREFIXES)]
    if missing or unexpected:
        raise RuntimeError(f"from_transformers: parameters do not line up (missing {missing}, unexpected {unexpected}).")
    return ours.train(theirs.training)


# ---------------------------------------------------------------------------------- processor files
def processor_file_to_transformers(name: str, text: str, *, source: str | Path = "the folder") -> str:
    """The text of a processor file (``PROCESSOR_FILES``) in transformers' format: in the
    ``*_config.json`` files the w2v2 class names become their twins (their w2v2 settings stay,
    as keys transformers ignores); other files (vocab.json, alphabet.json) are unchanged."""
    if not name.endswith("_config.json"):
        return text
    try:
        settings = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{name} of {source} is not JSON ({error}); save the processor there again "
                         "(processor.save_pretrained).") from None  # fmt: skip
    return _json_text(_renamed(settings, CLASS_TWINS))


def name_a_processor_that_loads(folder: Path) -> None:
    """transformers 5.25's ``Wav2Vec2ProcessorWithLM.from_pretrained`` fails on any folder (it calls
    a method ProcessorMixin no longer has), so ``AutoProcessor`` is sent to ``Wav2Vec2Processor``
    (greedy); the feature extractor's entry keeps ``Wav2Vec2ProcessorWithLM``, which is what
    ``pipeline()`` reads to decode with ``language_model/``."""
    processor_file = folder / "processor_config.json"
    if not processor_file.is_file():
        return
    settings = json.loads(processor_file.read_text())
    if settings.get("processor_class") == "Wav2Vec2ProcessorWithLM":
        settings["processor_class"] = "Wav2Vec2Processor"
        processor_file.write_text(_json_text(settings))


def name_the_phoneme_tokenizer(folder: Path) -> None:
    """A symbol tokenizer is transformers' ``Wav2Vec2PhonemeCTCTokenizer`` (``do_phonemize`` off: the
    transcripts are symbols already); ``Wav2Vec2CTCTokenizer`` would read its symbols as characters."""
    if not _symbol_tokenizer(folder):
        return
    for name in ("tokenizer_config.json", "config.json"):
        settings = json.loads((folder / name).read_text())
        settings["tokenizer_class"] = "Wav2Vec2PhonemeCTCTokenizer"
        (folder / name).write_text(_json_text(settings))


def check_transformers_processor(folder: Path) -> None:
    """Load a transformers-format folder's processor parts with transformers' classes: what cannot
    load fails here, with the fix, instead of in a user's ``pipeline()``."""
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2PhonemeCTCTokenizer

    if (folder / "processor_config.json").is_file() or (folder / "preprocessor_config.json").is_file():
        Wav2Vec2FeatureExtractor.from_pretrained(folder)
    if (folder / "vocab.json").is_file():
        vocab = json.loads((folder / "vocab.json").read_text())
        tokenizer_class = Wav2Vec2PhonemeCTCTokenizer if _symbol_tokenizer(folder) else Wav2Vec2CTCTokenizer
        theirs = tokenizer_class.from_pretrained(folder).get_vocab()
        if theirs != vocab:
            extra = sorted(set(theirs) - set(vocab))
            raise ValueError(f"the tokenizer in {folder.name} reads as {len(theirs)} tokens in {tokenizer_class.__name__}, not "
                             f"the {len(vocab)} of vocab.json (extra: {extra[:5]}); put its special tokens in vocab.json.")  # fmt: skip


def _symbol_tokenizer(folder: Path) -> bool:
    """Whether ``folder``'s tokenizer reads space-separated symbols (phonemes): ``phone_delimiter_token`` set."""
    settings = folder / "tokenizer_config.json"
    return settings.is_file() and bool(json.loads(settings.read_text()).get("phone_delimiter_token"))


def _renamed(value: Any, names: dict[str, str]) -> Any:
    """``value`` (parsed JSON) with the class names of ``names`` swapped where a ``*_class``/``*_type`` key holds one."""
    if isinstance(value, dict):
        return {k: names.get(v, v) if isinstance(v, str) and k.endswith(("_class", "_type")) else _renamed(v, names)
                for k, v in value.items()}  # fmt: skip
    return value


def _json_text(settings: dict) -> str:
    return json.dumps(settings, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
