"""Atomic, rotating checkpoints for Accelerate training loops.

A checkpoint is written by ``accelerator.save_state`` into ``<output_dir>/.tmp-checkpoint-<step>``;
the main process then adds ``trainer_state.json`` (step, data position, temperature, counters),
flushes every file to disk, writes the completion marker last (with the size and SHA-256 of
every file) and renames the directory to
``<output_dir>/checkpoint-<step>`` (the Trainer's naming, which Hub uploads leave out). A rename is atomic, so a crash at any moment (SIGKILL, power)
leaves either the previous checkpoints or the new, complete one; :func:`latest_checkpoint`
trusts only directories with the marker, and :func:`latest_verified_checkpoint` only those whose
files still match it (a truncated or overwritten file makes it fall back to the one before).
The oldest complete checkpoints beyond ``keep_last`` are deleted after the rename, each renamed
to ``.removed-checkpoint-<step>`` first, so that a kill during the deletion leaves no
``checkpoint-*`` folder without its marker.

Fine-tuning (transformers' Trainer, which writes ``checkpoint-<step>`` in place) marks each
checkpoint with :func:`mark_complete` once it is written, under its own marker name
(``FINETUNE_MARKER``), so that neither trainer takes the other's checkpoints for its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..layout import COMPLETE_MARKER, FINETUNE_MARKER, LOCK_FILE, STATE_FILE

logger = logging.getLogger(__name__)

__all__ = ["LOCK_FILE", "run_lock", "COMPLETE_MARKER", "FINETUNE_MARKER", "complete_checkpoints", "mark_complete", "foreign_checkpoints", "latest_checkpoint", "latest_verified_checkpoint", "load_checkpoint", "remove_incomplete", "save_checkpoint"]

_PREFIX, _TMP = "checkpoint-", ".tmp-checkpoint-"
_REMOVED = ".removed-checkpoint-"  # a checkpoint being deleted (renamed first, so never half a checkpoint-*)


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


def complete_checkpoints(root: str | os.PathLike, marker: str = COMPLETE_MARKER) -> list[Path]:
    """Complete checkpoints (those with ``marker``) in the run directory ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(_PREFIX) and (p / marker).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(_PREFIX) :]))


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint of a run in ``output_dir``, or None."""
    found = complete_checkpoints(output_dir)
    return found[-1] if found else None


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _manifest(directory: Path) -> dict[str, list]:
    """{relative path: [size, sha256]} of every file under ``directory``."""
    return {str(p.relative_to(directory)): [p.stat().st_size, _digest(p)] for p in sorted(directory.rglob("*")) if p.is_file()}


def mark_complete(directory: str | os.PathLike, step: int, marker: str = COMPLETE_MARKER) -> None:
    """Flush every file of ``directory`` to disk, then write ``marker`` with the size and SHA-256 of each."""
    directory = Path(directory)
    _fsync_tree(directory)
    _write_json(directory / marker, {"step": step, "files": _manifest(directory)})
    _fsync_dir(directory)


def checkpoint_problem(checkpoint: str | os.PathLike, marker: str = COMPLETE_MARKER) -> str | None:
    """Why a complete checkpoint's files no longer match its marker (missing, resized, changed), or None.

    Markers written before checksums were recorded have no manifest and pass.
    """
    checkpoint = Path(checkpoint)
    expected = json.loads((checkpoint / marker).read_text()).get("files")
    for name, (size, digest) in (expected or {}).items():
        path = checkpoint / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, {size} when saved"
        if _digest(path) != digest:
            return f"{name} changed since it was saved (SHA-256 differs)"
    return None


def latest_verified_checkpoint(output_dir: str | os.PathLike, marker: str = COMPLETE_MARKER) -> Path | None:
    """The newest complete checkpoint whose files match its marker; newer damaged ones are skipped with a warning."""
    for checkpoint in reversed(complete_checkpoints(output_dir, marker)):
        problem = checkpoint_problem(checkpoint, marker)
        if problem is None:
            return checkpoint
        logger.warning("not resuming from %s: %s; trying the checkpoint before it", checkpoint, problem)
    return None


def foreign_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """``checkpoint-*`` folders without the completion marker: never ours (the marker is written
    before the rename), e.g. transformers Trainer's. They are left alone."""
    root = Path(output_dir)
    return sorted(p for p in root.iterdir() if p.name.startswith(_PREFIX) and not (p / COMPLETE_MARKER).is_file()) if root.is_dir() else []


def remove_incomplete(output_dir: str | os.PathLike) -> list[Path]:
    """Delete the temporary directories left by interrupted saves and removals (call on the main process).

    Only ``.tmp-checkpoint-*`` and ``.removed-checkpoint-*`` folders, which only
    :func:`save_checkpoint` writes.
    """
    root = Path(output_dir)
    stale = [p for p in root.iterdir() if p.name.startswith((_TMP, _REMOVED))] if root.is_dir() else []
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
        mark_complete(tmp, step)
        if final.exists():  # the same update saved before a crash: replace it
            _remove(final)
        os.rename(tmp, final)  # atomic: from here on the checkpoint exists, complete
        _fsync_dir(root)
        if keep_last > 0:
            for old in complete_checkpoints(root)[:-keep_last]:
                _remove(old)
    accelerator.wait_for_everyone()
    return final


def _remove(checkpoint: Path) -> None:
    """Delete a checkpoint so that a kill midway leaves no ``checkpoint-*`` folder without its
    marker (which would read as another trainer's): first renamed (atomic) to a temporary name
    that :func:`remove_incomplete` clears."""
    doomed = checkpoint.with_name(_REMOVED + checkpoint.name[len(_PREFIX):])
    shutil.rmtree(doomed, ignore_errors=True)
    os.rename(checkpoint, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def load_checkpoint(accelerator, checkpoint: str | os.PathLike) -> dict:
    """Restore everything ``save_checkpoint`` stored; returns its ``state`` (with ``step``)."""
    checkpoint = Path(checkpoint)
    if not (checkpoint / COMPLETE_MARKER).is_file():
        raise ValueError(f"{checkpoint} has no {COMPLETE_MARKER}: it is incomplete; resume from latest_checkpoint().")
    accelerator.load_state(str(checkpoint))
    return json.loads((checkpoint / STATE_FILE).read_text())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextmanager
def run_lock(output_dir: str | os.PathLike, what: str, *, enabled: bool = True) -> Iterator[None]:
    """Hold ``<output_dir>/.w2v2-run.lock`` while ``what`` (e.g. "w2v2-pretrain") writes there.

    A second run into the same folder is refused with who holds it (pid, host, since when). A
    lock left by a process that no longer runs on this host is taken over with a warning. The
    folder is created if needed, and removed again if it is still empty when the run ends
    (a run refused before writing anything leaves no trace). ``enabled`` False (processes other
    than the main one) does nothing.
    """
    if not enabled:
        yield
        return
    root = Path(output_dir)
    if root.exists() and not root.is_dir():
        raise ValueError(f"output_dir={str(root)!r} is a file, not a folder; choose a new or empty folder for the run.")
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    path, host = root / LOCK_FILE, socket.gethostname()
    me = {"what": what, "pid": os.getpid(), "host": host, "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            try:
                holder = json.loads(path.read_text())
            except (OSError, ValueError):  # being written this instant, or garbage
                holder = {}
            if holder.get("host") == host and isinstance(holder.get("pid"), int) and not _alive(holder["pid"]):
                logger.warning("taking over %s: its %s (pid %d) no longer runs", path, holder.get("what"), holder["pid"])
                path.unlink(missing_ok=True)
                continue
            raise ValueError(
                f"output_dir={str(root)!r} is in use by {holder.get('what', 'another run')} (pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}, since {holder.get('since', '?')}); wait for it to end or choose another "
                f"output_dir (delete {path} only if that run is gone)."
            ) from None
    with os.fdopen(fd, "w") as handle:
        json.dump(me, handle)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        if created and root.is_dir() and not any(root.iterdir()):
            root.rmdir()
