"""Atomic, rotating checkpoints for Accelerate training loops.

A checkpoint is written by ``accelerator.save_state`` into ``<output_dir>/.tmp-checkpoint-<step>``;
the main process then adds ``trainer_state.json`` (step, data position, temperature, counters),
flushes every file to disk, writes the completion marker last and renames the directory to
``<output_dir>/checkpoint-<step>`` (the Trainer's naming, which Hub uploads leave out). A rename is atomic, so a crash at any moment (SIGKILL, power)
leaves either the previous checkpoints or the new, complete one; :func:`latest_checkpoint`
trusts only directories with the marker. The oldest complete checkpoints beyond ``keep_last``
are deleted after the rename.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

__all__ = ["COMPLETE_MARKER", "complete_checkpoints", "foreign_checkpoints", "latest_checkpoint", "load_checkpoint", "remove_incomplete", "save_checkpoint"]

COMPLETE_MARKER = "checkpoint_complete.json"
STATE_FILE = "trainer_state.json"
_PREFIX, _TMP = "checkpoint-", ".tmp-checkpoint-"


def _fsync_tree(directory: Path) -> None:
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, data: dict) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())


def complete_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Complete checkpoints in the run directory ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(_PREFIX) and (p / COMPLETE_MARKER).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(_PREFIX) :]))


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint of a run in ``output_dir``, or None."""
    found = complete_checkpoints(output_dir)
    return found[-1] if found else None


def foreign_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """``checkpoint-*`` folders without the completion marker: never ours (the marker is written
    before the rename), e.g. transformers Trainer's. They are left alone."""
    root = Path(output_dir)
    return sorted(p for p in root.iterdir() if p.name.startswith(_PREFIX) and not (p / COMPLETE_MARKER).is_file()) if root.is_dir() else []


def remove_incomplete(output_dir: str | os.PathLike) -> list[Path]:
    """Delete the temporary directories left by interrupted saves (call on the main process).

    Only ``.tmp-checkpoint-*`` folders, which only :func:`save_checkpoint` writes.
    """
    root = Path(output_dir)
    stale = [p for p in root.iterdir() if p.name.startswith(_TMP)] if root.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def save_checkpoint(accelerator, output_dir: str | os.PathLike, step: int, state: dict, *, keep_last: int) -> Path:
    """Save model, optimizer, scheduler, scaler and RNG states plus ``state`` for update ``step``.

    Every process must call it (``save_state`` stores one RNG file per process). Returns the
    final directory. ``keep_last`` <= 0 keeps every checkpoint.
    """
    root = Path(output_dir)
    final, tmp = root / f"{_PREFIX}{step:08d}", root / f"{_TMP}{step:08d}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _write_json(tmp / STATE_FILE, {"step": step, **state})
        _fsync_tree(tmp)
        _write_json(tmp / COMPLETE_MARKER, {"step": step})
        _fsync_dir(tmp)
        if final.exists():  # the same update saved before a crash: replace it
            shutil.rmtree(final)
        os.rename(tmp, final)  # atomic: from here on the checkpoint exists, complete
        _fsync_dir(root)
        if keep_last > 0:
            for old in complete_checkpoints(root)[:-keep_last]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, checkpoint: str | os.PathLike) -> dict:
    """Restore everything ``save_checkpoint`` stored; returns its ``state`` (with ``step``)."""
    checkpoint = Path(checkpoint)
    if not (checkpoint / COMPLETE_MARKER).is_file():
        raise ValueError(f"{checkpoint} has no {COMPLETE_MARKER}: it is incomplete; resume from latest_checkpoint().")
    accelerator.load_state(str(checkpoint))
    return json.loads((checkpoint / STATE_FILE).read_text())
