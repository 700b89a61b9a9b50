"""Sharing on the Hugging Face Hub: uploading a saved model folder (``push_to_hub``).

Pushing goes through ``huggingface_hub.HfApi``; the endpoint, token and Xet settings come
from the usual environment (``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_DISABLE_XET``).
``model.push_to_hub(repo_id)`` and ``processor.push_to_hub(repo_id)`` are transformers'
own ``PushToHubMixin`` methods and need nothing from this module. Model cards are written by
``w2v2.model_card``, exports in transformers' format by ``w2v2.transformers_export``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from .layout import IGNORE_PATTERNS
from .model_card import folder_format, transformers_card
from .transformers_export import export_transformers

__all__ = ["HUB_FORMATS", "push_to_hub"]

HUB_FORMATS = ("w2v2", "transformers")  # push_to_hub: hub_format=None uploads the folder as it is


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
                transformers_card(folder / "README.md", folder / "README.md", ctc=(folder / "vocab.json").is_file(),
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
