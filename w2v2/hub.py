"""Sharing on the Hugging Face Hub: model cards, pushing a saved folder, and the export
that people with only transformers installed can load.

Pushing goes through ``huggingface_hub.HfApi``; the endpoint, token and Xet settings come
from the usual environment (``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_DISABLE_XET``).
``model.push_to_hub(repo_id)`` and ``processor.push_to_hub(repo_id)`` are transformers'
own ``PushToHubMixin`` methods and need nothing from this module.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["HUB_FORMATS", "TASKS", "export_transformers", "push_to_hub", "write_model_card"]

# task -> (pipeline tag shown by the Hub, tag that names the task)
TASKS = {
    "automatic-speech-recognition": ("automatic-speech-recognition", "automatic-speech-recognition"),
    "pretraining": ("feature-extraction", "pretraining"),
}
HUB_FORMATS = ("w2v2", "transformers")
LICENSE = "apache-2.0"
# Trainer by-products that never belong in a published model repo.
IGNORE_PATTERNS = [
    "checkpoint-*", "checkpoint-*/**", "runs/**", "*.pt", "*.pth", "training_args.bin",
    "trainer_state.json", ".cache/**", ".w2v2-run.lock",  # the last: training.checkpointing.LOCK_FILE
]  # fmt: skip


def _library_name(save_dir: Path) -> str:
    """``transformers`` for a transformers-format export (model_type wav2vec2), else ``w2v2``."""
    config_file = save_dir / "config.json"
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
) -> Path:
    """Write ``save_dir/README.md``: YAML metadata the Hub indexes and a readable body.

    Args:
        save_dir: the folder a model was saved to (``config.json`` decides the library name).
        task: ``"automatic-speech-recognition"`` (a CTC model) or ``"pretraining"``.
        base_model: the repo id the model was fine-tuned from, if any.
        datasets: dataset ids trained on; the first one labels the metrics.
        metrics: e.g. ``{"wer": 0.12}``; written to ``model-index`` and a results table.
        hyperparameters: written as a table.
        summary: a paragraph under the title.
        images: paths of pictures (loss curves, ...) copied into ``save_dir`` and embedded.

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
        library_name=_library_name(save_dir),
        license=LICENSE,
        pipeline_tag=pipeline_tag,
        tags=["wav2vec2", "w2v2", "audio", task_tag],
        datasets=datasets or None,
        base_model=base_model,
        model_name=model_name,
        eval_results=eval_results or None,
    )

    body = [f"# {model_name}", ""]
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
    body += [
        "## Usage",
        "",
        "```python",
        *(
            ["from transformers import pipeline", "", f'asr = pipeline("automatic-speech-recognition", model="{model_name}")']
            if card_data.library_name == "transformers"
            else ["import w2v2  # registers the w2v2 classes with transformers' Auto classes",
                  "from transformers import AutoModel", "", f'model = AutoModel.from_pretrained("{model_name}")']
        ),
        "```",
        "",
    ]  # fmt: skip
    card = ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(body))
    path = save_dir / "README.md"
    card.save(path)
    return path


def export_transformers(save_dir: str | Path, out_dir: str | Path) -> Path:
    """Convert a saved w2v2 model (and its processor, if saved alongside) to transformers'
    own Wav2Vec2 classes in ``out_dir``, loadable without w2v2 installed.

    The model goes through ``w2v2.to_transformers``; the processor becomes a
    ``Wav2Vec2Processor`` of a ``Wav2Vec2FeatureExtractor`` and a ``Wav2Vec2CTCTokenizer``
    with the same vocabulary and special tokens. A README.md in ``save_dir`` is copied with
    ``library_name: transformers``; pictures are copied as they are.
    """
    import w2v2  # the package imports this module only lazily, so no import cycle

    save_dir, out_dir = Path(save_dir), Path(out_dir)
    config = json.loads((save_dir / "config.json").read_text()) if (save_dir / "config.json").is_file() else {}
    architecture = (config.get("architectures") or [None])[0]
    if not hasattr(w2v2, str(architecture)):
        raise ValueError(
            f"{save_dir}/config.json names architecture {architecture!r}, not a w2v2 model; "
            "save a W2V2ForCTC or W2V2ForPreTraining there with save_pretrained first."
        )
    model = getattr(w2v2, architecture).from_pretrained(save_dir)
    w2v2.to_transformers(model).save_pretrained(out_dir)
    _export_processor(save_dir, out_dir)

    if (save_dir / "README.md").is_file():
        from huggingface_hub import ModelCard

        card = ModelCard.load(save_dir / "README.md")
        card.data.library_name = "transformers"
        card.save(out_dir / "README.md")
    for picture in [*save_dir.glob("*.png"), *save_dir.glob("*.jpg"), *save_dir.glob("*.svg")]:
        shutil.copy2(picture, out_dir / picture.name)
    return out_dir


def _export_processor(save_dir: Path, out_dir: Path) -> None:
    """Re-save the w2v2 processor in ``save_dir`` (if any) as transformers' Wav2Vec2 classes."""
    if not any((save_dir / name).is_file() for name in ("processor_config.json", "preprocessor_config.json")):
        return
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    from .processing import W2V2Processor

    processor = W2V2Processor.from_pretrained(save_dir)
    fe = processor.feature_extractor
    feature_extractor = Wav2Vec2FeatureExtractor(
        feature_size=fe.feature_size,
        sampling_rate=fe.sampling_rate,
        padding_value=fe.padding_value,
        do_normalize=fe.do_normalize,
        return_attention_mask=fe.return_attention_mask,
    )
    tok = processor.tokenizer
    vocab = dict(sorted(tok.get_vocab().items(), key=lambda item: item[1]))
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "vocab.json"
        vocab_file.write_text(json.dumps(vocab, ensure_ascii=False))
        tokenizer = Wav2Vec2CTCTokenizer(
            str(vocab_file),
            unk_token=str(tok.unk_token),
            pad_token=str(tok.pad_token),
            bos_token=str(tok.bos_token) if tok.bos_token is not None else None,
            eos_token=str(tok.eos_token) if tok.eos_token is not None else None,
            word_delimiter_token=str(getattr(tok, "word_delimiter_token", "|")),
            do_lower_case=bool(getattr(tok, "do_lower_case", False)),
        )
    if tokenizer.get_vocab() != vocab:
        raise ValueError(
            f"the tokenizer in {save_dir} does not map to Wav2Vec2CTCTokenizer's vocabulary "
            f"({len(vocab)} vs {len(tokenizer)} tokens); its special tokens must be in vocab.json."
        )
    Wav2Vec2Processor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(out_dir)


def push_to_hub(
    save_dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    hub_format: str = "w2v2",
    revision: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload a saved model folder to the Hub and return the commit sha.

    Creates the repo if needed (``private`` only matters then) and the branch ``revision``
    if it does not exist yet. Files that did not change are skipped; when nothing changed
    no commit is made and the current head's sha is returned. With
    ``hub_format="transformers"`` the folder is first converted by ``export_transformers``.
    """
    from huggingface_hub import HfApi

    save_dir = Path(save_dir)
    if hub_format not in HUB_FORMATS:
        raise ValueError(f"hub_format={hub_format!r} is not supported; use one of {HUB_FORMATS}.")
    if not (save_dir / "config.json").is_file():
        raise ValueError(f"save_dir={str(save_dir)!r} has no config.json; call model.save_pretrained(save_dir) first.")
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    if revision is not None and revision != "main":
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_dir if hub_format == "w2v2" else export_transformers(save_dir, tmp)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            revision=revision,
            commit_message=commit_message or f"Upload {hub_format}-format model with w2v2",
            ignore_patterns=IGNORE_PATTERNS,
        )
    return info.oid
