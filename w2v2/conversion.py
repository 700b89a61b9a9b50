"""Moving models between w2v2 and transformers' ``Wav2Vec2*`` classes: loaded models
(``to_transformers``, ``from_transformers``) and whole folders (``export_transformers``: what
``w2v2-export --format transformers`` and ``push_to_hub(..., hub_format="transformers")`` write).

Parameter names are the same on both sides, so conversion is a matter of configuration:
``W2V2Config`` extends ``Wav2Vec2Config`` with the fields of fairseq's objective, which a
transformers model does not have, and converts itself (``W2V2Config.to_transformers_config``,
``from_any_pretrained``, ``from_transformers_config``); a transformers config written here keeps
w2v2's extra fields as keys transformers ignores, so a round trip keeps every w2v2 setting.
Class names are swapped with their twins (``w2v2.configuration.CLASS_TWINS``) both ways.

Two formats of a model folder (README, "Interoperability"):

* **transformers'**: ``config.json`` says ``model_type: wav2vec2`` and names transformers'
  classes (``Wav2Vec2ForCTC``, ``Wav2Vec2Processor``, ``Wav2Vec2CTCTokenizer``, ...), so
  ``pipeline()`` and the Auto classes load it without w2v2; w2v2's own settings stay in the
  files as extra keys, which transformers ignores and ``W2V2*.from_pretrained`` /
  ``W2V2Processor.from_pretrained`` read back. ``w2v2-finetune`` writes this by default.
* **w2v2's**: ``model_type: w2v2`` and the W2V2 class names; loads after ``import w2v2``.
  ``w2v2-pretrain`` writes it (transformers' ``Wav2Vec2ForPreTraining`` has no feature
  penalty, gradient scaling or Gumbel schedule); :func:`export_transformers` converts any
  folder w2v2 writes, checkpoints included.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, Wav2Vec2ForCTC, Wav2Vec2ForPreTraining, Wav2Vec2Model

from .configuration import CLASS_TWINS, OURS_OF, W2V2Config
from .layout import COMPLETE_MARKER, IGNORE_PATTERNS, MODEL_LM_DIR, PICTURES, PROCESSOR_FILES, STATE_FILE
from .model_card import folder_format, transformers_card
from .modeling import W2V2ForCTC, W2V2ForPreTraining, W2V2Model
from .processing import W2V2FeatureExtractor

__all__ = ["export_transformers", "folder_format", "from_transformers", "to_transformers"]

# w2v2 model class -> its transformers twin
_MODEL_TWINS = {W2V2Model: Wav2Vec2Model, W2V2ForPreTraining: Wav2Vec2ForPreTraining, W2V2ForCTC: Wav2Vec2ForCTC}


def to_transformers(model: PreTrainedModel) -> PreTrainedModel:
    """Return the transformers ``Wav2Vec2Model``/``Wav2Vec2ForPreTraining``/``Wav2Vec2ForCTC``
    with this model's weights (on the same device and dtype), for people who only have
    transformers installed. The Gumbel temperature is carried over; a pretraining model's
    config masks as w2v2's pretraining did (``to_transformers_config(pretraining=True)``)."""
    if type(model) not in _MODEL_TWINS:
        raise TypeError(f"to_transformers() takes a W2V2Model, W2V2ForPreTraining or W2V2ForCTC, not {type(model).__name__}.")
    pretraining = isinstance(model, W2V2ForPreTraining)
    if pretraining and model.config.quantizer != "gumbel":
        raise ValueError(f"W2V2Config.quantizer={model.config.quantizer!r}: transformers' Wav2Vec2ForPreTraining has only the "
                         "Gumbel quantizer; convert the W2V2Model (model.wav2vec2) or a fine-tuned W2V2ForCTC instead.")
    config = model.config.to_transformers_config(pretraining=pretraining)
    param = next(model.parameters())
    target = _MODEL_TWINS[type(model)](config).to(device=param.device, dtype=param.dtype)
    theirs = target.state_dict()
    state = {k: v for k, v in model.state_dict().items() if k in theirs or not k.endswith("masked_spec_embed")}
    missing, unexpected = target.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"to_transformers: parameters do not line up (missing {missing}, unexpected {unexpected}).")
    if pretraining:
        target.set_gumbel_temperature(model.config.gumbel_temperature)
    return target.train(model.training)


def from_transformers(model: PreTrainedModel, cls=None) -> PreTrainedModel:
    """The w2v2 model (of class ``cls``, default: the twin of ``model``'s class) with the
    weights of a transformers ``Wav2Vec2*`` model: ``cls.from_transformers(model)``."""
    cls = cls or {theirs: ours for ours, theirs in _MODEL_TWINS.items()}.get(type(model))
    if cls is None:
        raise TypeError(f"from_transformers() takes a Wav2Vec2Model, Wav2Vec2ForPreTraining or Wav2Vec2ForCTC, not {type(model).__name__}.")
    return cls.from_transformers(model)


def export_transformers(save_dir: str | Path, out_dir: str | Path) -> Path:
    """Write the model in ``save_dir`` in transformers' format to ``out_dir``: loadable by
    ``pipeline()``, ``AutoModelForCTC``/``AutoProcessor`` (a CTC model) or
    ``Wav2Vec2ForPreTraining``/``AutoFeatureExtractor`` (a pretraining one) without w2v2.

    ``save_dir`` is any folder w2v2 writes, in either format: a ``w2v2-pretrain`` or
    ``w2v2-finetune`` run, one of their ``checkpoint-*`` folders, or a ``save_pretrained``
    folder (or a Hub id). The weights go through :func:`to_transformers`; the processor's files
    are copied with transformers' class names, their w2v2 settings kept (``language_model/``
    and ``alphabet.json`` too); the card gets ``library_name: transformers`` and a pipeline
    snippet; pictures are copied. The files are written to a new folder beside ``out_dir`` and
    renamed into place, so a failed export leaves nothing behind. ``out_dir`` must be new or
    empty, or ``save_dir`` itself: its files are then replaced one by one once the export is
    complete (other files, e.g. checkpoints, stay).
    """
    save_dir, out_dir = _local_folder(save_dir), Path(out_dir)
    in_place = out_dir.exists() and out_dir.resolve() == save_dir.resolve()
    if not in_place and out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"out_dir={str(out_dir)!r} is not a new or empty folder; pass another one.")
    model, processor_files = _load_any(save_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.export-", dir=out_dir.parent))
    try:
        _write_export(model, processor_files, save_dir, stage, out_dir.name)
        if in_place:
            _replace_files(stage, out_dir)
            shutil.rmtree(stage)
        else:
            if out_dir.is_dir():
                out_dir.rmdir()  # empty (checked above)
            os.replace(stage, out_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return out_dir


def _local_folder(save_dir: str | Path) -> Path:
    """``save_dir``, or the local snapshot of a Hub id."""
    if Path(save_dir).is_dir():
        return Path(save_dir)
    if Path(save_dir).exists() or str(save_dir).count("/") != 1:
        raise ValueError(f"save_dir={str(save_dir)!r} is not a folder; pass a model folder (or a Hub id).")
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(str(save_dir), ignore_patterns=IGNORE_PATTERNS))


def _load_any(save_dir: Path) -> tuple[Any, dict[str, str]]:
    """(the W2V2 model in ``save_dir``, {name: text} of its processor files). A ``w2v2-pretrain``
    checkpoint has no config.json: its trainer_state.json holds the config and feature extractor
    (else the run folder's are used)."""
    classes = {cls.__name__: cls for cls in _MODEL_TWINS}
    config_file = save_dir / "config.json"
    if config_file.is_file():
        architecture = (json.loads(config_file.read_text()).get("architectures") or [None])[0]
        architecture = OURS_OF.get(architecture, architecture)
        if architecture not in classes:
            raise ValueError(f"{config_file} names architecture {architecture!r}, not a wav2vec 2.0 model; save a "
                             "W2V2ForCTC or W2V2ForPreTraining there with save_pretrained first.")  # fmt: skip
        return classes[architecture].from_pretrained(save_dir), _processor_files(save_dir)
    if not (save_dir / COMPLETE_MARKER).is_file() or not (save_dir / "model.safetensors").is_file():
        raise ValueError(f"save_dir={str(save_dir)!r} has no config.json; pass a folder written by w2v2-pretrain or "
                         "w2v2-finetune (or by save_pretrained), or one of their checkpoint-* folders.")  # fmt: skip
    from safetensors.torch import load_file

    state, run = json.loads((save_dir / STATE_FILE).read_text()), save_dir.parent
    if "model_config" in state:
        config = W2V2Config.from_dict(state["model_config"])
    elif (run / "config.json").is_file():
        config = W2V2Config.from_pretrained(run)
    else:
        raise ValueError(f"checkpoint {save_dir} holds no model config and its run folder has no config.json; "
                         "finish the run (w2v2-pretrain --resume) and export the run folder.")  # fmt: skip
    model = W2V2ForPreTraining(config)
    model.load_state_dict(load_file(save_dir / "model.safetensors"))
    model.set_gumbel_temperature(state.get("temperature", config.gumbel_temperature))
    if "feature_extractor" in state:
        return model, {"preprocessor_config.json": W2V2FeatureExtractor.from_dict(state["feature_extractor"]).to_json_string()}
    return model, _processor_files(run)


def _processor_files(folder: Path) -> dict[str, str]:
    return {name: (folder / name).read_text() for name in PROCESSOR_FILES if (folder / name).is_file()}


def _write_export(model, processor_files: dict[str, str], save_dir: Path, stage: Path, export_name: str) -> None:
    """Everything of the export into ``stage``, checked by loading the processor with transformers' classes."""
    to_transformers(model.eval()).save_pretrained(stage)
    for name, text in processor_files.items():
        if name.endswith("_config.json"):
            try:
                settings = json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"{name} of {save_dir} is not JSON ({error}); save the processor there again "
                                 "(processor.save_pretrained).") from None  # fmt: skip
            text = json.dumps(_renamed(settings, CLASS_TWINS), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        (stage / name).write_text(text)
    if (save_dir / MODEL_LM_DIR).is_dir():
        shutil.copytree(save_dir / MODEL_LM_DIR, stage / MODEL_LM_DIR)
        _name_a_processor_that_loads(stage / "processor_config.json")
    _name_the_phoneme_tokenizer(stage)
    _check_processor(stage)
    if (save_dir / "README.md").is_file():
        transformers_card(save_dir / "README.md", stage / "README.md", ctc="vocab.json" in processor_files,
                     model_ids={save_dir.name: export_name})  # the snippet named the folder: now the export's
    for pattern in PICTURES:
        for picture in save_dir.glob(pattern):
            shutil.copy2(picture, stage / picture.name)


def _name_a_processor_that_loads(processor_file: Path) -> None:
    """transformers 5.25's ``Wav2Vec2ProcessorWithLM.from_pretrained`` fails on any folder (it calls
    a method ProcessorMixin no longer has), so ``AutoProcessor`` is sent to ``Wav2Vec2Processor``
    (greedy); the feature extractor's entry keeps ``Wav2Vec2ProcessorWithLM``, which is what
    ``pipeline()`` reads to decode with ``language_model/``."""
    if not processor_file.is_file():
        return
    settings = json.loads(processor_file.read_text())
    if settings.get("processor_class") == "Wav2Vec2ProcessorWithLM":
        settings["processor_class"] = "Wav2Vec2Processor"
        processor_file.write_text(json.dumps(settings, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def _symbol_tokenizer(folder: Path) -> bool:
    """Whether ``folder``'s tokenizer reads space-separated symbols (phonemes): ``phone_delimiter_token`` set."""
    settings = folder / "tokenizer_config.json"
    return settings.is_file() and bool(json.loads(settings.read_text()).get("phone_delimiter_token"))


def _name_the_phoneme_tokenizer(folder: Path) -> None:
    """A symbol tokenizer is transformers' ``Wav2Vec2PhonemeCTCTokenizer`` (``do_phonemize`` off: the
    transcripts are symbols already); ``Wav2Vec2CTCTokenizer`` would read its symbols as characters."""
    if not _symbol_tokenizer(folder):
        return
    for name in ("tokenizer_config.json", "config.json"):
        settings = json.loads((folder / name).read_text())
        settings["tokenizer_class"] = "Wav2Vec2PhonemeCTCTokenizer"
        (folder / name).write_text(json.dumps(settings, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def _renamed(value: Any, names: dict[str, str]) -> Any:
    """``value`` (parsed JSON) with the class names of ``names`` swapped where a ``*_class``/``*_type`` key holds one."""
    if isinstance(value, dict):
        return {k: names.get(v, v) if isinstance(v, str) and k.endswith(("_class", "_type")) else _renamed(v, names)
                for k, v in value.items()}  # fmt: skip
    return value


def _check_processor(folder: Path) -> None:
    """Load the exported processor's parts with transformers' classes: what cannot load fails the export here."""
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


def _replace_files(stage: Path, folder: Path) -> None:
    """Move the export's files over ``folder``'s, weights first: at any moment the folder loads in w2v2."""
    for name in sorted((p.name for p in stage.iterdir()), key=lambda n: (n != "model.safetensors", n != "config.json", n)):
        target = folder / name
        if (stage / name).is_dir():
            if not target.exists():
                os.replace(stage / name, target)  # else: the same folder, copied unchanged
        else:
            os.replace(stage / name, target)
