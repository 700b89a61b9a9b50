"""Shared by the fine-tuning and transcription tests: a few spoken utterances and a tiny recognizer."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

from w2v2.data.tts import SAMPLE_RATE, Voice, synthesize

# Short, distinct utterances: enough for a tiny model to memorise in a few seconds of CPU.
UTTERANCES = ("HELLO WORLD", "GOOD MORNING", "BLUE SKY", "OPEN THE DOOR")
VOICE = Voice("espeak-ng", "en-us")


def write_audiofolder(root: Path, texts=UTTERANCES, split: str = "train") -> Path:
    """``root/split/`` with one FLAC per text and metadata.csv (file_name, transcription, duration)."""
    folder = root / split
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, text in enumerate(texts):
        audio = synthesize(VOICE, text, rate=1.1, pitch=1.0)
        name = f"utt{i}.flac"
        sf.write(folder / name, audio, SAMPLE_RATE)
        rows.append({"file_name": name, "transcription": text, "duration": len(audio) / SAMPLE_RATE})
    with open(folder / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder


def long_recording(path: Path, seconds: float, texts=UTTERANCES, gap_s: float = 0.4) -> list[str]:
    """Write ``seconds`` of the utterances read one after another (with pauses) to a FLAC file.

    Written block by block, so the test process never holds the whole signal. Returns the
    words spoken, in order.
    """
    clips = [synthesize(VOICE, t, rate=1.1, pitch=1.0) for t in texts]
    gap = np.zeros(int(gap_s * SAMPLE_RATE), dtype=np.float32)
    target, written, words, i = int(seconds * SAMPLE_RATE), 0, [], 0
    with sf.SoundFile(path, "w", samplerate=SAMPLE_RATE, channels=1, format="FLAC") as f:
        while written < target:
            block = np.concatenate([clips[i % len(clips)], gap])[: target - written]
            f.write(block)
            written += len(block)
            if len(block) == len(clips[i % len(clips)]) + len(gap):
                words += texts[i % len(texts)].split()
            i += 1
    return words


def train_tiny_ctc(root: Path, *, steps: int = 400, seed: int = 0, lm: str | None = None, **training_overrides):
    """Fine-tune a tiny model from scratch on :data:`UTTERANCES` (one utterance per batch, no
    SpecAugment or dropout) until it has memorised them: about 10 s on one CPU thread.
    ``lm``: ``w2v2-finetune --lm`` (evaluation with LM beam search too). fp32 unless
    ``auto_bf16=True`` is passed: "auto" is measured, and on a CPU where bf16 is about as fast
    for this model the choice (and so the model the tests read) would change from run to run."""
    from w2v2.training.ctc_trainer import CTCTrainingArguments
    from w2v2.training.finetune import DataArguments, ModelArguments, finetune_ctc

    write_audiofolder(root / "data")
    model_args = ModelArguments(from_scratch=True, config_name="tiny", mask_time_prob=0.0, mask_feature_prob=0.0,
                                layerdrop=0.0, activation_dropout=0.0, lm=lm)  # fmt: skip
    data_args = DataArguments(dataset_name_or_path=str(root / "data"), train_split="train", eval_split="train",
                              test_splits=[])  # fmt: skip
    training_args = CTCTrainingArguments(
        output_dir=str(root / "model"), max_steps=steps, learning_rate=5e-3, per_device_train_batch_size=1,
        per_device_eval_batch_size=1, eval_steps=steps, save_steps=steps, logging_steps=20, seed=seed,
        disable_tqdm=True, use_cpu=True, save_total_limit=1, **{"auto_bf16": False, **training_overrides},
    )  # fmt: skip
    return finetune_ctc(model_args, data_args, training_args)
