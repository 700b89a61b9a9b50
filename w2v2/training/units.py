"""``w2v2-units``: discrete speech units from a pretrained model, one sequence per file.

    w2v2-units --model_name_or_path MODEL --inputs audio/ --out units.jsonl [--deduplicate] [--combine_groups]
    w2v2-units --model_name_or_path MODEL --dataset corpus/ --split train --out units/ --output_format dataset

A unit is the codebook entry that a frame (20 ms for BASE) picks in each of the quantizer's G
groups (:meth:`W2V2ForPreTraining.quantize`, fairseq's ``forward_idx``): G integers in [0, V)
per frame, or with ``--combine_groups`` one integer in [0, V**G) (``sum_g code_g * V**(G-1-g)``).
``--deduplicate`` collapses runs of identical units into one and records each run's length in
``run_lengths`` (the sequences speech language models read; the lengths restore the frames).

MODEL is a pretraining checkpoint, w2v2's or transformers' format (``Wav2Vec2ForPreTraining``).
Audio is normalised as the model's saved feature extractor says, then read in windows of
``--chunk_seconds`` aligned to frames: the units equal those of one whole pass for layer-norm
feature encoders (``small``, LARGE); BASE's group-norm first layer normalises each window.

JSON lines out: one ``{"file", "frames", "units"[, "run_lengths"]}`` per file, written as each
file is done. Dataset out (``save_to_disk``): the dataset's columns other than audio, plus
``file``, ``frames`` and ``units``. Files that cannot be decoded are skipped, counted and named.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoFeatureExtractor

from ..cli_errors import parse_cli_args
from ..modeling import W2V2ForPreTraining
from ..processing.audio import SAMPLE_RATE, list_audio_files, load_audio
from .audio_data import load_audio_dataset

__all__ = ["UnitsArguments", "combine_groups", "deduplicate", "extract_units", "main"]

logger = logging.getLogger(__name__)


@dataclass
class UnitsArguments:
    """``w2v2-units`` arguments."""

    model_name_or_path: str = field(metadata={"help": "Pretraining checkpoint (w2v2 or transformers format, folder or Hub id)."})
    out: str = field(metadata={"help": "Output: a .jsonl file, or a folder with --output_format dataset. Must not exist."})
    inputs: list[str] = field(default_factory=list, metadata={"help": "Audio files and/or folders (searched recursively)."})
    dataset: str | None = field(default=None, metadata={"help": "Instead of --inputs: an audiofolder, saved dataset or Hub dataset."})
    split: str = field(default="train", metadata={"help": "Split of --dataset."})
    audio_column: str = field(default="audio", metadata={"help": "Audio column of --dataset."})
    output_format: str = field(default="jsonl", metadata={"help": "jsonl, or dataset (datasets' save_to_disk folder).",
                                                          "choices": ["jsonl", "dataset"]})
    deduplicate: bool = field(default=False, metadata={"help": "Collapse runs of identical units; adds run_lengths."})
    combine_groups: bool = field(default=False, metadata={"help": "One integer per frame instead of one per group."})
    chunk_seconds: float = field(default=30.0, metadata={"help": "Audio read per forward pass (memory is linear in it)."})
    device: str | None = field(default=None, metadata={"help": "'cpu', 'cuda', ...; default: cuda when available."})
    progress: bool = field(default=True, metadata={"help": "Progress bar on standard error."})


def combine_groups(codes: np.ndarray, num_vars: int) -> np.ndarray:
    """codes (T, G) in [0, V) -> (T,) in [0, V**G): group g is digit g, most significant first."""
    weights = num_vars ** np.arange(codes.shape[-1] - 1, -1, -1, dtype=np.int64)
    return codes.astype(np.int64) @ weights


def deduplicate(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """units (T, ...) -> (runs (R, ...), run lengths (R,)): consecutive equal units as one."""
    if not len(units):
        return units, np.zeros(0, dtype=np.int64)
    flat = units.reshape(len(units), -1)
    starts = np.concatenate([[True], (flat[1:] != flat[:-1]).any(axis=1)])
    index = np.flatnonzero(starts)
    return units[index], np.diff(np.append(index, len(units)))


@torch.no_grad()
def extract_units(model: W2V2ForPreTraining, input_values: np.ndarray, *, chunk_seconds: float = 30.0,
                  sampling_rate: int = SAMPLE_RATE) -> np.ndarray:  # fmt: skip
    """input_values (S,), already normalised as the model's feature extractor does -> codes (T, G).

    Read in windows of about ``chunk_seconds`` that start on a frame (a multiple of the encoder's
    hop) and overlap by the receptive field less one hop, so every frame sees the samples a
    whole pass would give it.
    """
    cfg = model.config
    hop = int(np.prod(cfg.conv_stride))
    field_ = cfg.receptive_field
    if chunk_seconds * sampling_rate < field_:
        raise ValueError(f"chunk_seconds={chunk_seconds} is shorter than the model's receptive field ({field_} samples); raise it.")
    frames_total = int(model._get_feat_extract_output_lengths(len(input_values)))
    per_window = max(1, int(chunk_seconds * sampling_rate - field_) // hop + 1)  # frames per window
    device = next(model.parameters()).device
    parts, done = [], 0
    while done < frames_total:
        start = done * hop
        window = input_values[start : start + (per_window - 1) * hop + field_]
        codes = model.quantize(torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32))[None].to(device))[0]
        parts.append(codes[: frames_total - done].cpu().numpy())
        done += len(parts[-1])
    return np.concatenate(parts) if parts else np.zeros((0, cfg.num_codevector_groups), dtype=np.int64)


def _items(args: UnitsArguments):
    """(name, undecoded audio cell, other columns) for every input."""
    if args.dataset:
        ds = load_audio_dataset(args.dataset, split=args.split, audio_column=args.audio_column)
        others = [c for c in ds.column_names if c != args.audio_column]
        for i, row in enumerate(ds):
            cell = row[args.audio_column]
            yield cell.get("path") or f"{args.dataset}[{args.split}][{i}]", cell, {c: row[c] for c in others}
        return
    for path in list_audio_files(args.inputs):
        yield str(path), {"path": str(path), "bytes": None}, {}


def main(argv: list[str] | None = None) -> dict:
    """Write the units; returns ``{"files": n written, "failed": [names]}``."""
    (args,) = parse_cli_args([UnitsArguments], argv)
    if bool(args.inputs) == bool(args.dataset):
        raise ValueError("pass either --inputs (audio files or folders) or --dataset, not both and not neither.")
    out = Path(args.out)
    if out.exists():
        raise ValueError(f"--out {out} exists; w2v2-units never overwrites: choose a new path or remove it.")
    if args.output_format == "jsonl" and out.suffix != ".jsonl":
        raise ValueError(f"--out {out} is not a .jsonl file; name it *.jsonl or pass --output_format dataset.")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = W2V2ForPreTraining.from_pretrained(args.model_name_or_path).to(device).eval()
    try:
        feature_extractor = AutoFeatureExtractor.from_pretrained(args.model_name_or_path)
    except OSError as error:
        raise ValueError(f"{args.model_name_or_path} has no feature extractor (preprocessor_config.json), so its audio "
                         "normalisation is unknown; save the pretraining run's feature extractor beside the model.") from error
    rate = feature_extractor.sampling_rate
    num_vars = model.config.num_codevectors_per_group

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    rows, failed, written = [], [], 0
    sink = open(partial, "w") if args.output_format == "jsonl" else None
    try:
        for name, cell, others in tqdm(_items(args), desc="units", unit="file", disable=not args.progress):
            try:
                audio = load_audio(cell, rate)
            except RuntimeError as error:
                failed.append(name)
                logger.warning("skipping %s: %s", name, error)
                continue
            values = feature_extractor(audio, sampling_rate=rate, return_tensors="np").input_values[0]
            if len(values) < model.config.receptive_field:
                failed.append(name)
                logger.warning("skipping %s: %d samples, fewer than the model's receptive field (%d)", name, len(values),
                               model.config.receptive_field)  # fmt: skip
                continue
            codes = extract_units(model, values, chunk_seconds=args.chunk_seconds, sampling_rate=rate)  # (T, G)
            units = combine_groups(codes, num_vars) if args.combine_groups else codes
            row = {**others, "file": name, "frames": len(codes)}
            if args.deduplicate:
                units, lengths = deduplicate(units)
                row["run_lengths"] = lengths.tolist()
            row["units"] = units.tolist()
            written += 1
            if sink:
                sink.write(json.dumps(row) + "\n")
                sink.flush()
            else:
                rows.append(row)
    finally:
        if sink:
            sink.close()
    if not written:
        raise ValueError(f"no file could be read ({len(failed)} skipped: {', '.join(failed[:5])}); check the audio inputs.")
    if sink:
        os.replace(partial, out)  # the file appears whole, or as *.partial with the files done so far
    else:
        from datasets import Dataset

        Dataset.from_list(rows).save_to_disk(str(partial))
        os.replace(partial, out)
    if failed:
        print(f"{len(failed)} of {len(failed) + written} files skipped (could not be read, or too short): {', '.join(failed)}",
              file=sys.stderr)  # fmt: skip
    return {"files": written, "failed": failed}


def cli() -> None:
    """``w2v2-units``; exit status 1 when some file was skipped (after writing the others)."""
    from w2v2.cli_errors import run_cli

    if run_cli(main)["failed"]:
        sys.exit(1)


if __name__ == "__main__":
    cli()
