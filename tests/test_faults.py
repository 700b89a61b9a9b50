"""SIGKILL both trainers at several points (inside a checkpoint save, mid-epoch, in the encoder's
frozen phase), resume each time, and compare the final weights bit for bit with a run never
interrupted (issue 15, "What must hold"). Real subprocesses on tiny models, one thread each.

Fine-tuning runs over 56 utterances one per batch, more than the 50 that ``group_by_length``
sorts by length together, so its data order is random (transformers' sampler drew another one
when resumed mid-epoch: issue 15, item 13), with SpecAugment, dropout and layerdrop on so that
every RNG matters. About a minute on two idle cores (most of it is each process importing torch
and transformers).
"""

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pretrain_utils import make_audiofolder
from safetensors.torch import load_file

from w2v2.training.checkpointing import COMPLETE_MARKER, FINETUNE_MARKER

pytestmark = pytest.mark.multiprocess

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
       "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
CLIPS, STEPS = 56, 70  # one epoch of 56 updates, then 14 of the second


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    """56 clips of the four test utterances, each trimmed by a different amount (distinct durations)."""
    from finetune_helpers import UTTERANCES, VOICE

    from w2v2.data.tts import SAMPLE_RATE, synthesize

    root = tmp_path_factory.mktemp("faults")
    clips = [synthesize(VOICE, text, rate=1.1, pitch=1.0) for text in UTTERANCES]
    folder, rng, rows = root / "data" / "train", np.random.default_rng(0), []
    folder.mkdir(parents=True)
    for i in range(CLIPS):
        audio = clips[i % 4][: len(clips[i % 4]) - int(rng.integers(0, 3000))]
        sf.write(folder / f"u{i:02d}.flac", audio, SAMPLE_RATE)
        rows.append({"file_name": f"u{i:02d}.flac", "transcription": UTTERANCES[i % 4], "duration": len(audio) / SAMPLE_RATE})
    with open(folder / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root / "data"


def finetune_command(data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "w2v2.training.finetune", "--from_scratch", "--dataset_name_or_path", str(data),
            "--train_split", "train", "--eval_split", "", "--test_splits", "", "--output_dir", str(out),
            "--max_steps", str(STEPS), "--save_steps", "4", "--save_total_limit", "2", "--logging_steps", "5",
            "--per_device_train_batch_size", "1", "--learning_rate", "2e-3", "--freeze_finetune_updates", "20",
            "--mask_time_length", "2", "--mask_feature_prob", "0.2", "--hidden_dropout", "0.1", "--eval_strategy", "no",
            "--load_best_model_at_end", "false", "--auto_bf16", "false", "--use_cpu", "--disable_tqdm", "true", "--seed", "3"]  # fmt: skip


def run_and_kill(command: list[str], kill_when, *, timeout: float = 120) -> bool:
    """Start ``command`` and SIGKILL it as soon as ``kill_when()`` holds (polled every millisecond).
    Returns whether it was killed (False: it ended first)."""
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        if kill_when():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.001)
    proc.kill()
    proc.wait()
    return False


def steps_of(out: Path, marker: str) -> tuple[list[int], list[int]]:
    """Update numbers of the complete (marked) and the unmarked checkpoint folders in ``out``."""
    done, partial = [], []
    for path in out.glob("checkpoint-*") if out.is_dir() else []:
        (done if (path / marker).is_file() else partial).append(int(path.name.split("-")[1]))
    return sorted(done), sorted(partial)


def saved(out: Path, marker: str, step: int):
    """Holds a random moment (0-50 ms) after the checkpoint of ``step`` is complete: the kill lands
    between or inside the updates after it, mid-epoch."""
    delay = random.Random(step).uniform(0, 0.05)
    return lambda: step in steps_of(out, marker)[0] and (time.sleep(delay) or True)


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = load_file(a), load_file(b)
    assert first.keys() == second.keys()
    different = [name for name in first if not (first[name] == second[name]).all()]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def test_finetuning_killed_anywhere_resumes_to_the_same_weights(spoken, tmp_path, caplog):
    from w2v2.training.finetune import _checkpoint_to_resume

    reference = subprocess.Popen(finetune_command(spoken, tmp_path / "ref"), env=ENV, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)  # fmt: skip
    out = tmp_path / "killed"
    command = finetune_command(spoken, out)

    def saving_after(step):  # a checkpoint folder exists but has no marker yet: the kill lands inside its save
        return lambda: any(s > step for s in steps_of(out, FINETUNE_MARKER)[1])

    # 1. inside a save, in the encoder's frozen phase (updates 1-20 of the first epoch);
    # 2. between updates in the second epoch (resumed mid-epoch: the data order must be that epoch's)
    for i, kill_when in enumerate([saving_after(8), saved(out, FINETUNE_MARKER, 60)]):
        resume = ["--resume_from_checkpoint", "last"] if i else []
        assert run_and_kill(command + resume, kill_when), f"kill {i + 1} came too late: the run had ended"
        if i == 0:  # the half-written checkpoint is passed over, with a warning, for the one before
            done, partial = steps_of(out, FINETUNE_MARKER)
            assert partial, "the first kill missed the save"
            with caplog.at_level("WARNING"):
                assert _checkpoint_to_resume(out, "last") == str(out / f"checkpoint-{done[-1]}")
            assert f"not resuming from {out / f'checkpoint-{partial[-1]}'}: it has no {FINETUNE_MARKER}" in caplog.text
    final = subprocess.run(command + ["--resume_from_checkpoint", "last"], env=ENV, capture_output=True, text=True, timeout=240)
    assert final.returncode == 0, final.stderr[-3000:]
    assert reference.wait(timeout=240) == 0, reference.stderr.read()[-3000:]

    assert_same_weights(tmp_path / "ref" / "model.safetensors", out / "model.safetensors")
    ref, killed = (json.loads((d / "all_results.json").read_text()) for d in (tmp_path / "ref", out))
    assert killed["train_loss"] == ref["train_loss"]  # averaged over the whole run, not the last invocation
    assert steps_of(out, FINETUNE_MARKER) == ([68, 70], [])


def pretrain_command(folder: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "w2v2.training.pretrain", "--dataset", str(folder), "--output_dir", str(out), "--recipe",
            "tiny", "--logging_steps", "1", "--max_updates", "10", "--save_steps", "1", "--save_total_limit", "2"]  # fmt: skip


def test_pretraining_killed_anywhere_resumes_to_the_same_weights(tmp_path):
    folder = make_audiofolder(tmp_path / "audio", clips=12)  # about 3 batches per epoch: 10 updates cross 3 epochs
    reference = subprocess.Popen(pretrain_command(folder, tmp_path / "ref"), env=ENV, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)  # fmt: skip
    out = tmp_path / "killed"
    command = pretrain_command(folder, out)

    def saving_after(step):  # a save has begun: its temporary folder exists
        return lambda: any(int(p.name.split("-")[-1]) > step for p in out.glob(".tmp-checkpoint-*"))

    # 1. inside a save (its temporary folder exists); 2. mid-epoch, a moment after update 7 was saved
    # (it can land while checkpoint 5 is deleted, which once left checkpoint-5 without its marker:
    # the next run refused the folder as another trainer's)
    for i, kill_when in enumerate([saving_after(3), saved(out, COMPLETE_MARKER, 7)]):
        assert run_and_kill(command + (["--resume"] if i else []), kill_when), f"kill {i + 1} came too late"
        if i == 0:
            assert any(out.glob(".tmp-checkpoint-*")), "the first kill missed the save"
    final = subprocess.run(command + ["--resume"], env=ENV, capture_output=True, text=True, timeout=240)
    assert final.returncode == 0, final.stderr[-3000:]
    assert reference.wait(timeout=240) == 0, reference.stderr.read()[-3000:]
    assert_same_weights(tmp_path / "ref" / "model.safetensors", out / "model.safetensors")
    assert not list(out.glob(".tmp-checkpoint-*")) and not list(out.glob(".removed-checkpoint-*"))
