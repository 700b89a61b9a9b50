"""A w2v2 model folder written in transformers' format: ``export_transformers``, what
``w2v2-export --format transformers``, ``w2v2-finetune`` and ``push_to_hub(...,
hub_format="transformers")`` write. The conversion itself (class names, config, weights,
processor files) is ``w2v2.conversion``; this module reads folders and writes them safely.

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

from .configuration import W2V2Config
from .conversion import (OURS_OF, check_transformers_processor, name_a_processor_that_loads, name_the_phoneme_tokenizer,
                         processor_file_to_transformers, to_transformers)
from .layout import COMPLETE_MARKER, IGNORE_PATTERNS, MODEL_LM_DIR, PICTURES, PROCESSOR_FILES, STATE_FILE
from .model_card import transformers_card
from .modeling import W2V2ForCTC, W2V2ForPreTraining, W2V2Model
from .processing import W2V2FeatureExtractor

__all__ = ["export_transformers"]

_MODEL_CLASSES = {cls.__name__: cls for cls in (W2V2Model, W2V2ForPreTraining, W2V2ForCTC)}


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
    classes = _MODEL_CLASSES
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
        (stage / name).write_text(processor_file_to_transformers(name, text, source=save_dir))
    if (save_dir / MODEL_LM_DIR).is_dir():
        shutil.copytree(save_dir / MODEL_LM_DIR, stage / MODEL_LM_DIR)
        name_a_processor_that_loads(stage)
    name_the_phoneme_tokenizer(stage)
    check_transformers_processor(stage)
    if (save_dir / "README.md").is_file():
        transformers_card(save_dir / "README.md", stage / "README.md", ctc="vocab.json" in processor_files,
                     model_ids={save_dir.name: export_name})  # the snippet named the folder: now the export's
    for pattern in PICTURES:
        for picture in save_dir.glob(pattern):
            shutil.copy2(picture, stage / picture.name)


def _replace_files(stage: Path, folder: Path) -> None:
    """Move the export's files over ``folder``'s, weights first: at any moment the folder loads in w2v2."""
    for name in sorted((p.name for p in stage.iterdir()), key=lambda n: (n != "model.safetensors", n != "config.json", n)):
        target = folder / name
        if (stage / name).is_dir():
            if not target.exists():
                os.replace(stage / name, target)  # else: the same folder, copied unchanged
        else:
            os.replace(stage / name, target)
