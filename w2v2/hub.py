"""Sharing on the Hugging Face Hub: model cards, pushing a saved folder, and the export
that people with only transformers installed can load.

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

Pushing goes through ``huggingface_hub.HfApi``; the endpoint, token and Xet settings come
from the usual environment (``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_DISABLE_XET``).
``model.push_to_hub(repo_id)`` and ``processor.push_to_hub(repo_id)`` are transformers'
own ``PushToHubMixin`` methods and need nothing from this module.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["HUB_FORMATS", "TASKS", "export_transformers", "folder_format", "push_to_hub", "usage_snippet", "write_model_card"]

# task -> (pipeline tag shown by the Hub, tag that names the task)
TASKS = {
    "automatic-speech-recognition": ("automatic-speech-recognition", "automatic-speech-recognition"),
    "pretraining": ("feature-extraction", "pretraining"),
}
HUB_FORMATS = ("w2v2", "transformers")  # push_to_hub: hub_format=None uploads the folder as it is
LICENSE = "apache-2.0"
# Trainer by-products that never belong in a published model repo.
IGNORE_PATTERNS = [
    "checkpoint-*", "checkpoint-*/**", "runs/**", "*.pt", "*.pth", "training_args.bin",
    "trainer_state.json", ".cache/**", ".w2v2-run.lock",  # the last: training.checkpointing.LOCK_FILE
]  # fmt: skip


# Written by the processor's parts; class names in them are swapped with their twins on export.
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json", "vocab.json",
                   "special_tokens_map.json", "added_tokens.json", "alphabet.json")  # fmt: skip
LM_DIR = "language_model"  # pyctcdecode's layout, the same in w2v2 and transformers
PICTURES = ("*.png", "*.jpg", "*.svg")
# The first line of a w2v2-format card's note on loading and exporting (dropped from an export's card).
W2V2_FORMAT_NOTE = "> **w2v2 format.**"


def folder_format(save_dir: str | Path) -> str:
    """``"transformers"`` for a folder whose config.json says ``model_type: wav2vec2``, else ``"w2v2"``."""
    config_file = Path(save_dir) / "config.json"
    if config_file.is_file() and json.loads(config_file.read_text()).get("model_type") == "wav2vec2":
        return "transformers"
    return "w2v2"


def _markdown_table(header: tuple[str, str], rows: dict[str, Any]) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in rows.items()]
    return "\n".join(lines)


def write_model_card(
    save_dir: str | Path,
    *,
    task: str,
    base_model: str | None = None,
    datasets: list[str] = (),
    metrics: dict[str, float] | None = None,
    hyperparameters: dict | None = None,
    summary: str = "",
    images: list[str] = (),
    model_id: str | None = None,
) -> Path:
    """Write ``save_dir/README.md``: YAML metadata the Hub indexes and a readable body.

    The body ends with a usage snippet that runs as written from ``save_dir``'s parent folder
    (or anywhere, given ``model_id``): for a CTC model in transformers' format, the ASR
    pipeline. A w2v2-format card says right under its title how to load and how to export it.

    Args:
        save_dir: the folder a model was saved to (``config.json`` decides the library name).
        task: ``"automatic-speech-recognition"`` (a CTC model) or ``"pretraining"``.
        base_model: the repo id the model was fine-tuned from, if any.
        datasets: dataset ids trained on; the first one labels the metrics.
        metrics: e.g. ``{"wer": 0.12}``; written to ``model-index`` and a results table.
        hyperparameters: written as a table.
        summary: a paragraph under the title.
        images: paths of pictures (loss curves, ...) copied into ``save_dir`` and embedded.
        model_id: the Hub id the snippet loads (default: the folder's name).

    Returns:
        the path of the written README.md.
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    save_dir = Path(save_dir)
    if task not in TASKS:
        raise ValueError(f"task={task!r} is not supported; use one of {sorted(TASKS)}.")
    if not save_dir.is_dir():
        raise ValueError(f"save_dir={str(save_dir)!r} is not a folder; save the model there first.")
    pipeline_tag, task_tag = TASKS[task]
    datasets = list(datasets)
    model_name = save_dir.resolve().name
    eval_results = [
        EvalResult(
            task_type=pipeline_tag,
            dataset_type=datasets[0] if datasets else "custom",
            dataset_name=datasets[0] if datasets else "custom",
            metric_type=name,
            metric_value=float(value),
        )
        for name, value in (metrics or {}).items()
    ]
    card_data = ModelCardData(
        library_name=folder_format(save_dir),
        license=LICENSE,
        pipeline_tag=pipeline_tag,
        tags=["wav2vec2", "w2v2", "audio", task_tag],
        datasets=datasets or None,
        base_model=base_model,
        model_name=model_name,
        eval_results=eval_results or None,
    )

    body = [f"# {model_name}", ""]
    if card_data.library_name == "w2v2":
        body += _w2v2_format_note(model_id or model_name, task) + [""]
    body += [summary or f"A wav2vec 2.0 model ({task}) trained with w2v2.", ""]
    if base_model:
        body += [f"Fine-tuned from [{base_model}](https://huggingface.co/{base_model}).", ""]
    if datasets:
        body += ["Datasets: " + ", ".join(datasets) + ".", ""]
    if metrics:
        body += ["## Results", "", _markdown_table(("metric", "value"), metrics), ""]
    if hyperparameters:
        body += ["## Hyper-parameters", "", _markdown_table(("name", "value"), hyperparameters), ""]
    if images:
        body += ["## Figures", ""]
        for image in map(Path, images):
            if not image.is_file():
                raise ValueError(f"image {str(image)!r} does not exist; pass paths of existing files.")
            if image.resolve().parent != save_dir.resolve():
                shutil.copy2(image, save_dir / image.name)
            body += [f"![{image.stem}]({image.name})", ""]
    body += _usage(model_id or model_name, card_data.library_name, task)
    card = ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(body))
    path = save_dir / "README.md"
    card.save(path)
    return path


def _w2v2_format_note(model_id: str, task: str) -> list[str]:
    """The lines under a w2v2-format card's title: how to load the folder and how to export it."""
    cls = "W2V2ForPreTraining" if task == "pretraining" else "W2V2ForCTC"
    return [
        f"{W2V2_FORMAT_NOTE} Load it with the w2v2 package installed: `import w2v2`, then "
        f'`w2v2.{cls}.from_pretrained("{model_id}")` (or transformers\' Auto classes).',
        f"> For transformers alone, export it first: `w2v2-export --format transformers {model_id} {model_id.split('/')[-1]}-hf`"
        + (" (then `Wav2Vec2ForPreTraining` + `AutoFeatureExtractor`)." if task == "pretraining" else "."),
    ]


def _usage(model_id: str, library: str, task: str) -> list[str]:
    """The card's "Usage" section: a snippet that runs as written."""
    if task == "automatic-speech-recognition" and library == "transformers":
        code = ["from transformers import pipeline", "",
                f'asr = pipeline("automatic-speech-recognition", model="{model_id}")',
                'print(asr("speech.wav")["text"])  # any file ffmpeg reads, or {"raw": array, "sampling_rate": 16000}']
    elif task == "automatic-speech-recognition":
        code = ["import w2v2  # registers the w2v2 classes with transformers' Auto classes", "from transformers import pipeline", "",
                f'asr = pipeline("automatic-speech-recognition", model="{model_id}")', 'print(asr("speech.wav")["text"])']
    elif library == "transformers":
        code = ["import numpy as np", "from transformers import AutoFeatureExtractor, Wav2Vec2ForPreTraining", "",
                f'model = Wav2Vec2ForPreTraining.from_pretrained("{model_id}")',
                f'feature_extractor = AutoFeatureExtractor.from_pretrained("{model_id}")',
                "inputs = feature_extractor(np.zeros(16_000, np.float32), sampling_rate=16_000, return_tensors=\"pt\")",
                "hidden = model.wav2vec2(**inputs).last_hidden_state  # (1, 49, hidden_size): C, the context"]
    else:
        code = ["import numpy as np", "import w2v2  # registers the w2v2 classes with transformers' Auto classes",
                "from transformers import AutoFeatureExtractor", "",
                f'model = w2v2.W2V2ForPreTraining.from_pretrained("{model_id}")',
                f'feature_extractor = AutoFeatureExtractor.from_pretrained("{model_id}")',
                "inputs = feature_extractor(np.zeros(16_000, np.float32), sampling_rate=16_000, return_tensors=\"pt\")",
                "hidden = model.wav2vec2(**inputs).last_hidden_state  # (1, 49, hidden_size): C, the context"]
    fine_tune = ([f"Fine-tune it for speech recognition: `w2v2-finetune --model_name_or_path {model_id} "
                  "--dataset_name_or_path DATA --output_dir OUT`.", ""] if task == "pretraining" else [])  # fmt: skip
    return ["## Usage", "", "```python", *code, "```", "", *fine_tune]


def usage_snippet(card_text: str) -> str:
    """The Python code of a card's "Usage" section (what the tests run)."""
    usage = card_text[card_text.index("## Usage") :]
    return usage.split("```python\n", 1)[1].split("```", 1)[0]


def export_transformers(save_dir: str | Path, out_dir: str | Path) -> Path:
    """Write the model in ``save_dir`` in transformers' format to ``out_dir``: loadable by
    ``pipeline()``, ``AutoModelForCTC``/``AutoProcessor`` (a CTC model) or
    ``Wav2Vec2ForPreTraining``/``AutoFeatureExtractor`` (a pretraining one) without w2v2.

    ``save_dir`` is any folder w2v2 writes, in either format: a ``w2v2-pretrain`` or
    ``w2v2-finetune`` run, one of their ``checkpoint-*`` folders, or a ``save_pretrained``
    folder (or a Hub id). The weights go through ``w2v2.to_transformers``; the processor's files
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
    import w2v2
    from w2v2.modeling.conversion import CLASS_TWINS

    ours_of = {theirs: ours for ours, theirs in CLASS_TWINS.items()}
    config_file = save_dir / "config.json"
    if config_file.is_file():
        architecture = (json.loads(config_file.read_text()).get("architectures") or [None])[0]
        architecture = ours_of.get(architecture, architecture)
        if architecture not in ("W2V2Model", "W2V2ForPreTraining", "W2V2ForCTC"):
            raise ValueError(f"{config_file} names architecture {architecture!r}, not a wav2vec 2.0 model; save a "
                             "W2V2ForCTC or W2V2ForPreTraining there with save_pretrained first.")  # fmt: skip
        return getattr(w2v2, architecture).from_pretrained(save_dir), _processor_files(save_dir)
    from w2v2.training.checkpointing import COMPLETE_MARKER, STATE_FILE

    if not (save_dir / COMPLETE_MARKER).is_file() or not (save_dir / "model.safetensors").is_file():
        raise ValueError(f"save_dir={str(save_dir)!r} has no config.json; pass a folder written by w2v2-pretrain or "
                         "w2v2-finetune (or by save_pretrained), or one of their checkpoint-* folders.")  # fmt: skip
    from safetensors.torch import load_file

    state, run = json.loads((save_dir / STATE_FILE).read_text()), save_dir.parent
    if "model_config" in state:
        config = w2v2.W2V2Config.from_dict(state["model_config"])
    elif (run / "config.json").is_file():
        config = w2v2.W2V2Config.from_pretrained(run)
    else:
        raise ValueError(f"checkpoint {save_dir} holds no model config and its run folder has no config.json; "
                         "finish the run (w2v2-pretrain --resume) and export the run folder.")  # fmt: skip
    model = w2v2.W2V2ForPreTraining(config)
    model.load_state_dict(load_file(save_dir / "model.safetensors"))
    model.set_gumbel_temperature(state.get("temperature", config.gumbel_temperature))
    if "feature_extractor" in state:
        return model, {"preprocessor_config.json": w2v2.W2V2FeatureExtractor.from_dict(state["feature_extractor"]).to_json_string()}
    return model, _processor_files(run)


def _processor_files(folder: Path) -> dict[str, str]:
    return {name: (folder / name).read_text() for name in PROCESSOR_FILES if (folder / name).is_file()}


def _write_export(model, processor_files: dict[str, str], save_dir: Path, stage: Path, export_name: str) -> None:
    """Everything of the export into ``stage``, checked by loading the processor with transformers' classes."""
    from w2v2 import to_transformers
    from w2v2.modeling.conversion import CLASS_TWINS

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
    if (save_dir / LM_DIR).is_dir():
        shutil.copytree(save_dir / LM_DIR, stage / LM_DIR)
        _name_a_processor_that_loads(stage / "processor_config.json")
    _name_the_phoneme_tokenizer(stage)
    _check_processor(stage)
    if (save_dir / "README.md").is_file():
        _export_card(save_dir / "README.md", stage / "README.md", ctc="vocab.json" in processor_files,
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


def _export_card(card_file: Path, dest: Path, *, ctc: bool, model_ids: dict[str, str]) -> None:
    """The card with ``library_name: transformers``, without the w2v2-format note, and transformers'
    usage snippet for the model id its snippet named (renamed by ``model_ids``, e.g. folder -> repo)."""
    from huggingface_hub import ModelCard

    card = ModelCard.load(card_file)
    card.data.library_name = "transformers"
    lines = card.text.split("\n")
    if any(line.startswith(W2V2_FORMAT_NOTE) for line in lines):  # the note: two lines and a blank one
        at = next(i for i, line in enumerate(lines) if line.startswith(W2V2_FORMAT_NOTE))
        del lines[at : at + 3]
    text = "\n".join(lines)
    if "## Usage" in text:  # the last section (write_model_card); its snippet names the model
        found = re.search(r'(?:model=|from_pretrained\()"([^"]+)"', text[text.index("## Usage") :])
        model_id = found.group(1) if found else card.data.model_name
        task = "automatic-speech-recognition" if ctc else "pretraining"
        text = text[: text.index("## Usage")] + "\n".join(_usage(model_ids.get(model_id, model_id), "transformers", task))
    card.text = text
    card.save(dest)


def _replace_files(stage: Path, folder: Path) -> None:
    """Move the export's files over ``folder``'s, weights first: at any moment the folder loads in w2v2."""
    for name in sorted((p.name for p in stage.iterdir()), key=lambda n: (n != "model.safetensors", n != "config.json", n)):
        target = folder / name
        if (stage / name).is_dir():
            if not target.exists():
                os.replace(stage / name, target)  # else: the same folder, copied unchanged
        else:
            os.replace(stage / name, target)


def push_to_hub(
    save_dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    hub_format: str | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload a saved model folder to the Hub and return the commit sha.

    ``hub_format``: None uploads the folder as it is (``w2v2-finetune``'s output is in
    transformers' format, ``w2v2-pretrain``'s in w2v2's); ``"transformers"`` converts it first
    with :func:`export_transformers`; ``"w2v2"`` uploads it as it is and refuses a folder in
    transformers' format. Nothing is created on the Hub before the files to upload are ready:
    then the repo (``private`` only matters then) and the branch ``revision`` if they do not
    exist yet. Files that did not change are skipped; when nothing changed no commit is made
    and the current head's sha is returned.
    """
    from huggingface_hub import HfApi

    save_dir = Path(save_dir)
    if hub_format is not None and hub_format not in HUB_FORMATS:
        raise ValueError(f"hub_format={hub_format!r} is not supported; use None (the folder as it is) or one of {HUB_FORMATS}.")
    if not (save_dir / "config.json").is_file():
        raise ValueError(f"save_dir={str(save_dir)!r} has no config.json; call model.save_pretrained(save_dir) first.")
    if hub_format == "w2v2" and folder_format(save_dir) != "w2v2":
        raise ValueError(f"save_dir={str(save_dir)!r} is in transformers' format; push it with hub_format=None, or save "
                         "it in w2v2's format (w2v2-finetune --save_format w2v2).")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_dir
        if hub_format == "transformers":
            folder = export_transformers(save_dir, Path(tmp) / save_dir.name)
            if (folder / "README.md").is_file():  # its snippet loads the repo
                _export_card(folder / "README.md", folder / "README.md", ctc=(folder / "vocab.json").is_file(),
                             model_ids={save_dir.name: repo_id})  # fmt: skip
        api = HfApi(token=token)
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        if revision is not None and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            revision=revision,
            commit_message=commit_message or f"Upload {folder_format(folder)}-format model with w2v2",
            ignore_patterns=IGNORE_PATTERNS,
        )
    return info.oid
