"""Model cards of the folders w2v2 writes: YAML metadata the Hub indexes, a readable body, and a
usage snippet that runs as written (tested). A w2v2-format card says under its title how to load
the folder and how to export it; :func:`transformers_card` rewrites a card for an export in
transformers' format.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

__all__ = ["TASKS", "folder_format", "transformers_card", "usage_snippet", "write_model_card"]

# task -> (pipeline tag shown by the Hub, tag that names the task)
TASKS = {
    "automatic-speech-recognition": ("automatic-speech-recognition", "automatic-speech-recognition"),
    "pretraining": ("feature-extraction", "pretraining"),
}
LICENSE = "apache-2.0"
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


def transformers_card(card_file: Path, dest: Path, *, ctc: bool, model_ids: dict[str, str]) -> None:
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
