"""Every case of issue 15 ("Never lose a run or a result"), items 1-14, and the unusual inputs
that were already handled, in one table: (case, how to provoke it, what must be seen).

Each ``provoke`` returns what a user would see (the error's text, the warnings logged, a line
of the state left behind) and the row's fragments must all be in it: the value, its fix, the
count, the file kept. A case tested in full elsewhere (a SIGKILL in tests/test_faults.py, a
console script in tests/test_cli_errors.py) is provoked here in its cheap in-process form
(config validation, the model's entry checks, the collator, the resume choice); tiny configs,
seconds in all.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from pretrain_utils import make_audiofolder

from w2v2 import W2V2Config, W2V2CTCTokenizer, W2V2FeatureExtractor, W2V2ForCTC, W2V2Processor
from w2v2.cli_errors import describe, run_cli
from w2v2.processing.audio import load_audio
from w2v2.training.callbacks import FreezeEncoderCallback
from w2v2.training.checkpointing import (FINETUNE_MARKER, LOCK_FILE, latest_verified_checkpoint, mark_complete,
                                         run_lock)  # fmt: skip
from w2v2.training.collators import DataCollatorCTCWithPadding
from w2v2.training.ctc_trainer import CTCTrainer, CTCTrainingArguments, EpochSeededLengthGroupedSampler
from w2v2.training.finetune import DataArguments, ModelArguments, _checkpoint_to_resume, finetune_ctc, load_ctc_split
from w2v2.training.pretrain import parse_args, train
from w2v2.training.schedulers import get_tri_stage_schedule
from w2v2.inference.transcribe import main as transcribe_main

SR = 16_000


@dataclass
class Case:
    name: str
    provoke: Callable[[SimpleNamespace], str]  # returns what was seen
    expect: tuple[str, ...]  # fragments that must all be in it: {tmp} is the case's folder, {shared} the shared files


# ---- how to look ---------------------------------------------------------------------------


def refused(call: Callable[[], object], errors=(ValueError, TypeError, RuntimeError, OSError)) -> str:
    """The one-line text of the error ``call`` raises; a call that raises nothing fails the case."""
    try:
        call()
    except errors as error:
        text = str(error)
        assert "\n" not in text.strip(), f"not one line: {text!r}"
        return text
    raise AssertionError("nothing was refused")


@contextlib.contextmanager
def warnings_logged():
    """Collect every WARNING (and above) logged while the block runs, as one text."""
    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())
    root = logging.getLogger()
    root.addHandler(handler)
    text = SimpleNamespace(value="")
    try:
        yield text
    finally:
        root.removeHandler(handler)
        text.value = "\n".join(seen)


def logged(call: Callable[[], object]) -> str:
    """What ``call`` logged at WARNING, then ``| returned: <its value>``."""
    with warnings_logged() as text:
        value = call()
    return f"{text.value} | returned: {value}"


# ---- what the cases work on ----------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Files every case may read (never write): clips, a spoken-like CTC split, broken files."""
    root = tmp_path_factory.mktemp("cases")
    rng = np.random.default_rng(0)
    data = root / "ctc" / "train"
    data.mkdir(parents=True)
    rows = ["file_name,transcription,duration"]
    for i, (seconds, text) in enumerate([(1.0, "HELLO WORLD"), (0.8, "BLUE SKY"), (0.25, "A SENTENCE FAR TOO LONG FOR ITS AUDIO")]):
        sf.write(data / f"utt{i}.wav", (0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32), SR)
        rows.append(f"utt{i}.wav,{text},{seconds}")
    (data / "metadata.csv").write_text("\n".join(rows) + "\n")
    (root / "broken.flac").write_bytes(b"fLaC" + bytes(range(256)) * 8)
    nan = np.full(24_000, 0.1, dtype=np.float32)
    nan[5_000:5_010] = np.nan
    sf.write(root / "nan.wav", nan, SR, subtype="FLOAT")  # a float WAV keeps NaN
    tokenizer = W2V2CTCTokenizer.from_texts(["HELLO WORLD", "BLUE SKY", "A SENTENCE FAR TOO LONG FOR ITS AUDIO"])
    processor = W2V2Processor(W2V2FeatureExtractor(), tokenizer)
    torch.manual_seed(0)
    model = W2V2ForCTC(W2V2Config.tiny(vocab_size=len(tokenizer), mask_time_prob=0.0, layerdrop=0.0))
    model.save_pretrained(root / "model")
    processor.save_pretrained(root / "model")
    (root / "no_vocab").mkdir()
    (root / "no_vocab" / "preprocessor_config.json").write_text("{}")
    (root / "a_file").write_text("not a folder")
    return SimpleNamespace(shared=root, data=root / "ctc", processor=processor, model=model,
                           pretrain_audio=make_audiofolder(root / "pretrain", clips=6),
                           short_audio=make_audiofolder(root / "short", clips=3, seconds=(0.1, 0.2)))  # fmt: skip


def cell(path: Path) -> dict:
    return {"path": str(path), "bytes": None}


def checkpoints(root: Path, steps, marker=FINETUNE_MARKER, *, unmarked=()) -> Path:
    """``root/checkpoint-<step>`` folders with a file or two, marked complete (or not)."""
    for step in [*steps, *unmarked]:
        folder = root / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(bytes(range(256)) * 16)
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
        if step in steps:
            mark_complete(folder, step, marker)
    return root


def pretrain(ctx, out: Path, *extra) -> Path:
    return train(parse_args(["--dataset", str(ctx.pretrain_audio), "--output_dir", str(out), "--recipe", "tiny",
                             "--logging_steps", "1", "--save_steps", "1", "--mixed_precision", "no", *map(str, extra)]))  # fmt: skip


def pretrain_flags(ctx, flag, value):
    return lambda: parse_args(["--dataset", str(ctx.pretrain_audio), "--output_dir", str(ctx.root / "o"), "--recipe", "tiny",
                               flag, str(value)])  # fmt: skip


def ctc_trainer(ctx, out: Path, rows, *, steps: int, resume: str | None = None, **kwargs):
    """A CTCTrainer (w2v2-finetune's) on an in-memory dataset of ``rows`` (file index, text); returns it trained."""
    from datasets import Dataset


    files = [*sorted((ctx.data / "train").glob("*.wav")), ctx.shared / "broken.flac"]
    train = Dataset.from_dict({"audio": [cell(files[i]) for i, _ in rows], "transcription": [t for _, t in rows],
                               "duration": [1.0] * len(rows)})  # fmt: skip
    torch.manual_seed(0)
    config = W2V2Config.tiny(vocab_size=len(ctx.processor.tokenizer), mask_time_length=2, layerdrop=0.1, hidden_dropout=0.1)
    model = W2V2ForCTC(config)
    args = CTCTrainingArguments(output_dir=str(out), max_steps=steps, per_device_train_batch_size=kwargs.pop("batch", 1),
                                learning_rate=1e-3, logging_steps=1, eval_strategy="no", load_best_model_at_end=False,
                                auto_bf16=False, use_cpu=True, disable_tqdm=True, report_to="none", seed=0, **kwargs)  # fmt: skip
    collator = DataCollatorCTCWithPadding(ctx.processor, frames_of=model._get_feat_extract_output_lengths)
    trainer = CTCTrainer(model=model, args=args, data_collator=collator, train_dataset=train)
    trainer.train(resume_from_checkpoint=resume)
    return trainer


# ---- the cases -------------------------------------------------------------------------------


def item1_pretrain_into_a_finetuning_folder(ctx):
    out = checkpoints(ctx.root / "finetuned", [4])
    (out / "config.json").write_text("{}")
    seen = refused(lambda: pretrain(ctx, out, "--max_updates", 2, "--resume"))
    kept = sorted(p.name for p in (out / "checkpoint-4").iterdir())
    return f"{seen} | kept: {kept} config={(out / 'config.json').read_text()}"


def item2_finetune_refuses_an_earlier_run(ctx):
    return refused(lambda: _checkpoint_to_resume(checkpoints(ctx.root / "run", [2, 4]), None))


def item2_finetune_resumes_with_one_flag(ctx):
    out = checkpoints(ctx.root / "run", [2, 4])
    return f"last -> {_checkpoint_to_resume(out, 'last')}; True -> {_checkpoint_to_resume(out, 'True')}"


def item2_nothing_to_resume(ctx):
    return refused(lambda: _checkpoint_to_resume(ctx.root / "none", "last"))


def item3_a_second_run_into_a_locked_folder(ctx):
    with run_lock(ctx.root / "busy", "w2v2-pretrain"):
        return refused(lambda: run_lock(ctx.root / "busy", "w2v2-finetune").__enter__())


def item3_a_lock_of_a_dead_process_is_taken_over(ctx):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (ctx.root / "stale").mkdir()
    (ctx.root / "stale" / LOCK_FILE).write_text(json.dumps({"what": "w2v2-pretrain", "pid": dead.pid, "host": os.uname().nodename}))

    def take():
        with run_lock(ctx.root / "stale", "w2v2-finetune"):
            return json.loads((ctx.root / "stale" / LOCK_FILE).read_text())["what"]

    return logged(take)


def item4_no_usable_clip_is_an_error_with_counts(ctx):
    return refused(lambda: train(parse_args(["--dataset", str(ctx.short_audio), "--output_dir", str(ctx.root / "o"),
                                             "--recipe", "tiny", "--max_updates", "2", "--mixed_precision", "no"])))  # fmt: skip


def item5_max_sample_size_below_one_frame(ctx):
    return refused(lambda: pretrain(ctx, ctx.root / "short", "--max_sample_size", 100, "--min_sample_size", 50))


def item6_finetune_collator_leaves_out_a_bad_file(ctx):

    collator = DataCollatorCTCWithPadding(ctx.processor)
    good = sorted((ctx.data / "train").glob("*.wav"))[0]
    examples = [{"audio": cell(good), "transcription": "HELLO WORLD"}, {"audio": cell(ctx.shared / "broken.flac"), "transcription": "BLUE SKY"}]

    def collate():
        batch = collator(examples)
        return f"rows={len(batch['input_values'])} skipped={len(collator.skipped)}"

    return logged(collate)


def item6_finetuning_counts_the_files_left_out(ctx):
    rows = [(0, "HELLO WORLD"), (-1, "BLUE SKY")]  # -1: the undecodable file
    with warnings_logged() as text:
        trainer = ctc_trainer(ctx, ctx.root / "out", rows, steps=2, batch=2, save_strategy="no")
    counts = [entry["files_skipped"] for entry in trainer.state.log_history if "loss" in entry]
    return f"{text.value} | logged files_skipped per update: {counts}"


def item6_transcribe_writes_every_good_file_and_lists_the_bad(ctx):
    good = sorted((ctx.data / "train").glob("*.wav"))[0]
    stderr, out = io.StringIO(), ctx.root / "out.json"
    with contextlib.redirect_stderr(stderr):
        results = transcribe_main(["--model_name_or_path", str(ctx.shared / "model"), "--inputs", str(good), str(ctx.shared / "broken.flac"),
                        str(ctx.shared / "nan.wav"), "--output_format", "json", "--output_file", str(out), "--device", "cpu",
                        "--progress", "false"])  # fmt: skip
    written = json.loads(out.read_text())
    texts = sum("text" in r for r in written)
    return f"{stderr.getvalue()} | json entries={len(written)} with text={texts} returned={len(results)}"


def item7_a_nan_clip_is_refused_when_decoding(ctx):
    return refused(lambda: load_audio(cell(ctx.shared / "nan.wav")))


def model_entry(input_values, attention_mask=None):
    model = W2V2ForCTC(W2V2Config.tiny(vocab_size=8)).eval()
    return lambda: model(input_values, attention_mask=attention_mask)


def item9_collator_names_the_files_whose_label_is_too_long(ctx):

    collator = DataCollatorCTCWithPadding(ctx.processor, frames_of=ctx.model._get_feat_extract_output_lengths)
    files = sorted((ctx.data / "train").glob("*.wav"))
    examples = [{"audio": cell(files[0]), "transcription": "HELLO WORLD"},
                {"audio": cell(files[2]), "transcription": "A SENTENCE FAR TOO LONG FOR ITS AUDIO"}]  # fmt: skip
    return logged(lambda: f"too_long={len(collator(examples) and collator.too_long)}")


def item9_training_counts_them_in_its_log(ctx):
    rows = [(0, "HELLO WORLD"), (2, "A SENTENCE FAR TOO LONG FOR ITS AUDIO")]
    with warnings_logged() as text:
        trainer = ctc_trainer(ctx, ctx.root / "out", rows, steps=2, batch=2, save_strategy="no")
    counts = [entry["labels_too_long"] for entry in trainer.state.log_history if "loss" in entry]
    return f"{text.value} | logged labels_too_long per update: {counts}"


def item9_the_model_counts_and_warns(ctx):
    model = W2V2ForCTC(W2V2Config.tiny(vocab_size=8, mask_time_prob=0.0, ctc_zero_infinity=True)).eval()
    labels = torch.tensor([[3, 4, 5, -100, -100, -100, -100], [3, 3, 3, 3, 3, 3, 3]])  # 13 frames needed, 12 there
    return logged(lambda: f"impossible_alignments={model(torch.randn(2, 4000), labels=labels) and model.impossible_alignments}")


def item11_resuming_a_finished_pretraining_run_keeps_its_config(ctx):
    out = pretrain(ctx, ctx.root / "done", "--max_updates", 2)
    before = json.loads((out / "config.json").read_text())["gumbel_temperature"]
    pretrain(ctx, out, "--max_updates", 2, "--resume")
    after = json.loads((out / "config.json").read_text())["gumbel_temperature"]
    return f"before={before} after={after} same={before == after} below_start={after < 2.0}"


def item12_a_changed_checkpoint_falls_back(ctx, marker, damage):
    out = checkpoints(ctx.root / "run", [2, 4], marker)
    damage(out / "checkpoint-4" / "model.safetensors")
    return logged(lambda: latest_verified_checkpoint(out, marker).name)


def zeroed(path: Path):
    data = bytearray(path.read_bytes())
    data[-1024:] = bytes(1024)
    path.write_bytes(bytes(data))


def item13_a_half_written_checkpoint_is_passed_over(ctx):
    out = checkpoints(ctx.root / "run", [2, 4], unmarked=[6])
    return logged(lambda: _checkpoint_to_resume(out, "last"))


def item13_the_epoch_order_does_not_depend_on_the_resume(ctx):
    lengths = list(np.random.default_rng(0).uniform(1, 9, 200))
    straight = EpochSeededLengthGroupedSampler(2, lengths, seed=0)
    orders = []
    for epoch in (0, 1):
        straight.set_epoch(epoch)
        orders.append(list(straight))
    torch.manual_seed(123)  # a resumed process: other global RNG state, epoch 1 first
    resumed = EpochSeededLengthGroupedSampler(2, lengths, seed=0)
    resumed.set_epoch(1)
    return f"epoch 1 same after resume: {list(resumed) == orders[1]}; epochs differ: {orders[0] != orders[1]}"


def item13_resumed_mid_epoch_ends_identical_with_the_whole_runs_loss(ctx):
    rows = [(0, "HELLO WORLD"), (1, "BLUE SKY")] * 3  # 6 updates an epoch
    whole = ctc_trainer(ctx, ctx.root / "whole", rows, steps=8, save_steps=4, train_sampling_strategy="random")
    resumed_dir = ctx.root / "resumed"
    resumed_dir.mkdir()
    os.rename(ctx.root / "whole" / "checkpoint-4", resumed_dir / "checkpoint-4")  # a kill after update 4, mid-epoch 0
    resumed = ctc_trainer(ctx, resumed_dir, rows, steps=8, save_steps=4, train_sampling_strategy="random",
                          resume=str(resumed_dir / "checkpoint-4"))  # fmt: skip
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    same = all(torch.equal(a[k], b[k]) for k in a)
    loss = [t.state.log_history[-1]["train_loss"] for t in (whole, resumed)]
    return f"weights identical: {same}; train_loss equal: {loss[0] == loss[1]}"


def item14_a_cli_error_is_one_line_and_status_2(ctx):
    def main():
        raise ValueError("save_steps=0 is out of range (--save_steps): pass 1 or more.")

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as exit_:
        run_cli(main)
    return f"{stderr.getvalue().strip()} | lines={len(stderr.getvalue().splitlines())} status={exit_.value.code}"


def item14_split_names_the_sub_folders(ctx):
    return refused(lambda: load_ctc_split(DataArguments(dataset_name_or_path=str(ctx.data)), "train_10m"))


def finetune(ctx, **overrides):
    model = {"from_scratch": True, **overrides.pop("model", {})}
    data = {"dataset_name_or_path": str(ctx.data), "train_split": "train", "eval_split": "", "test_splits": [], **overrides.pop("data", {})}
    args = CTCTrainingArguments(output_dir=str(ctx.root / "ft"), max_steps=overrides.pop("max_steps", 1), use_cpu=True,
                                disable_tqdm=True, eval_strategy="no", load_best_model_at_end=False, report_to="none")  # fmt: skip
    return lambda: finetune_ctc(ModelArguments(**model), DataArguments(**data), args)


def tokenizer(ctx):
    return ctx.processor.tokenizer


F = W2V2FeatureExtractor()
CASES = [
    # ---- 1-4: data loss and hangs
    Case("1 pretrain into a fine-tuning run's folder: refused, its files kept", item1_pretrain_into_a_finetuning_folder,
         ("holds checkpoint-4, which w2v2-pretrain did not write", "choose another output_dir", "kept: ['finetune_checkpoint_complete.json'",
          "'model.safetensors'", "config={}")),
    Case("2 finetune into an earlier run: refused, names the flag", item2_finetune_refuses_an_earlier_run,
         ("holds an earlier fine-tuning run (checkpoint-4)", "--resume_from_checkpoint last", "or choose another output_dir")),
    Case("2 --resume_from_checkpoint last (or True) takes the newest checkpoint", item2_finetune_resumes_with_one_flag,
         ("last -> {tmp}/run/checkpoint-4;", "True -> {tmp}/run/checkpoint-4")),
    Case("2 --resume_from_checkpoint last with no checkpoint", item2_nothing_to_resume,
         ("resume_from_checkpoint='last'", "holds no checkpoint-* folder that is complete and intact", "drop the flag")),
    Case("3 two runs into one folder: the second is refused, told who holds it", item3_a_second_run_into_a_locked_folder,
         ("output_dir='{tmp}/busy' is in use by w2v2-pretrain (pid " + str(os.getpid()), "wait for it to end or choose another output_dir")),
    Case("3 a lock left by a dead process is taken over, with a warning", item3_a_lock_of_a_dead_process_is_taken_over,
         ("taking over {tmp}/stale/.w2v2-run.lock: its w2v2-pretrain (pid", "no longer runs", "returned: w2v2-finetune")),
    Case("4 pretraining with no usable clip: an error with the counts, not a hang", item4_no_usable_clip_is_an_error_with_counts,
         ("no usable clip in a whole epoch", "3 shorter than min_sample_size=4000")),
    # ---- 5: numeric flags, checked before anything runs
    *[Case(f"5 --{flag} {value}: refused with the range", lambda ctx, f=flag, v=value: refused(pretrain_flags(ctx, f"--{f}", v)),
           (f"{flag}={value} is out of range",))
      for flag, value in (("gradient_accumulation_steps", 0), ("max_updates", 0), ("save_steps", 0), ("logging_steps", 0),
                          ("learning_rate", -1.0), ("batch_seconds", 0.0))],
    Case("5 --max_sample_size below the receptive field", item5_max_sample_size_below_one_frame,
         ("max_sample_size=100 is shorter than one frame",)),
    # ---- 6-7: bad files are skipped, named and counted
    Case("6 finetune: an undecodable file is left out of its batch and named", item6_finetune_collator_leaves_out_a_bad_file,
         ("leaving out of the batch (1 so far)", "broken.flac", "rows=1 skipped=1")),
    Case("6 fine-tuning counts the files it leaves out in its log", item6_finetuning_counts_the_files_left_out,
         ("broken.flac", "logged files_skipped per update: [1, 2]")),
    Case("6 transcribe: every good file written (JSON), each bad one an error entry and listed", item6_transcribe_writes_every_good_file_and_lists_the_bad,
         ("error: cannot decode {shared}/broken.flac", "error: cannot use {shared}/nan.wav: 10 of its samples are NaN or infinite",
          "2 of 3 files could not be transcribed (the others were)", "json entries=3 with text=1")),
    Case("7 a NaN clip is refused when decoding, by file name", item7_a_nan_clip_is_refused_when_decoding,
         ("cannot use {shared}/nan.wav: 10 of its samples are NaN or infinite",)),
    # ---- 8: the model's entry checks
    Case("8 attention_mask of another length", lambda ctx: refused(model_entry(torch.randn(2, 16000), torch.ones(2, 8000, dtype=torch.long))),
         ("attention_mask has shape (2, 8000) but input_values (2, 16000)",)),
    Case("8 a 1-D input", lambda ctx: refused(model_entry(torch.randn(16000))), ("shape (16000,)", "input_values[None]")),
    Case("8 a 3-D input", lambda ctx: refused(model_entry(torch.randn(2, 1, 16000))), ("shape (2, 1, 16000)", "squeeze(1)")),
    Case("8 int16 samples", lambda ctx: refused(model_entry((torch.randn(2, 16000) * 3000).to(torch.int16))),
         ("dtype torch.int16; pass float samples",)),
    Case("8 float64 samples", lambda ctx: refused(model_entry(torch.randn(2, 16000, dtype=torch.float64))),
         ("float64 and the model torch.float32", "input_values.to(torch.float32)")),
    Case("8 fewer samples than one frame", lambda ctx: refused(model_entry(torch.randn(2, 100))), ("100 samples, fewer than one frame",)),
    Case("8 a numpy array", lambda ctx: refused(model_entry(np.zeros((2, 16000), np.float32))), ("pass a torch tensor",)),
    Case("8 a label id outside the vocabulary", lambda ctx: refused(lambda: W2V2ForCTC(W2V2Config.tiny(vocab_size=8))(
         torch.randn(1, 16000), labels=torch.tensor([[9]]))), ("labels contain id 9 >= vocab_size=8", "vocab_size=len(tokenizer)")),
    # ---- 9: labels CTC cannot align
    Case("9 the collator names the files whose label is too long", item9_collator_names_the_files_whose_label_is_too_long,
         ("CTC cannot align the label of 1 file(s) in this batch", "{shared}/ctc/train/utt2.wav (", "label frames, 12 audio frames)",
          "drop these utterances or check their transcripts", "too_long=1")),
    Case("9 fine-tuning counts them in its log", item9_training_counts_them_in_its_log,
         ("utt2.wav", "logged labels_too_long per update: [1, 2]")),
    Case("9 the model counts and warns", item9_the_model_counts_and_warns,
         ("1 of 2 utterances in this batch need more frames than they have", "counted as 0 (ctc_zero_infinity)", "impossible_alignments=1")),
    # ---- 10: configuration
    Case("10 --config_overrides with a typo: the closest field", lambda ctx: refused(lambda: W2V2Config.overrides_from_json('{"num_negativs": 10}')),
         ("'num_negativs', which is not a W2V2Config field; did you mean 'num_negatives'?",)),
    Case("10 --config_overrides that is not JSON", lambda ctx: refused(lambda: W2V2Config.overrides_from_json("{hidden_size: 8}")),
         ("config_overrides='{hidden_size: 8}' is not JSON", "write e.g.")),
    Case("10 groups that do not divide", lambda ctx: refused(lambda: W2V2Config.tiny(hidden_size=30, num_attention_heads=4)),
         ("W2V2Config.hidden_size=30 is not divisible by num_attention_heads=4", "choose a hidden_size that is a multiple")),
    Case("10 a conv stride of 0", lambda ctx: refused(lambda: W2V2Config.tiny(conv_stride=(5, 2, 2, 2, 2, 2, 0))),
         ("W2V2Config.conv_stride=(5, 2, 2, 2, 2, 2, 0) has an entry below 1", "positive integer")),
    Case("10 an unknown activation", lambda ctx: refused(lambda: W2V2Config.tiny(hidden_act="gelu2")),
         ("W2V2Config.hidden_act='gelu2' is not a known activation", "use one of")),
    # ---- 11-13: resume
    Case("11 --resume of a finished pretraining run keeps its temperature", item11_resuming_a_finished_pretraining_run_keeps_its_config,
         ("same=True below_start=True",)),
    *[Case(f"12 a {how} file in the newest {who} checkpoint: the one before, with a warning",
           lambda ctx, m=marker, d=damage: item12_a_changed_checkpoint_falls_back(ctx, m, d),
           ("not resuming from {tmp}/run/checkpoint-4: model.safetensors " + said, "returned: checkpoint-2"))
      for who, marker in (("pretraining", "checkpoint_complete.json"), ("fine-tuning", FINETUNE_MARKER))
      for how, damage, said in (("zeroed", zeroed, "changed since it was saved (SHA-256 differs)"),
                                ("truncated", lambda p: p.write_bytes(p.read_bytes()[:100]), "has 100 bytes, 4096 when saved"),
                                ("missing", Path.unlink, "is missing"))],
    Case("13 a checkpoint half-written by a kill is passed over", item13_a_half_written_checkpoint_is_passed_over,
         ("not resuming from {tmp}/run/checkpoint-6: it has no finetune_checkpoint_complete.json", "returned: {tmp}/run/checkpoint-4")),
    Case("13 an epoch's batches do not depend on where the run resumed", item13_the_epoch_order_does_not_depend_on_the_resume,
         ("epoch 1 same after resume: True; epochs differ: True",)),
    Case("13 resumed mid-epoch: identical weights, train_loss of the whole run", item13_resumed_mid_epoch_ends_identical_with_the_whole_runs_loss,
         ("weights identical: True; train_loss equal: True",)),
    # ---- 14: messages
    Case("14 a CLI error: one line, exit status 2", item14_a_cli_error_is_one_line_and_status_2,
         ("error: save_steps=0 is out of range (--save_steps): pass 1 or more. [W2V2_DEBUG=1 shows the traceback]", "lines=1 status=2")),
    Case("14 a full disk, in words", lambda ctx: describe(
         OSError(errno.ENOSPC, "No space left on device", "/data/out/model.safetensors")),
         ("no space left on the device (writing /data/out/model.safetensors): free some space",)),
    Case("14 a missing dataset path", lambda ctx: refused(finetune(ctx, data={"dataset_name_or_path": str(ctx.root / "nope")})),
         ("{tmp}/nope",)),
    Case("14 a processor folder without vocab.json", lambda ctx: refused(lambda: W2V2Processor.from_pretrained(ctx.shared / "no_vocab")),
         ("no_vocab holds no vocab.json",)),
    Case("14 a split that is not there lists the sub-folders", item14_split_names_the_sub_folders,
         ("--train_split 'train_10m' is neither a sub-folder of {shared}/ctc (it has ['train'])", "pass one of the sub-folders")),
    Case("14 sampling_rate given as text", lambda ctx: refused(lambda: F(np.zeros(16_000, np.float32), sampling_rate="16000")),
         ("sampling_rate='16000' is a str; pass the rate in Hz as an integer",)),
    Case("14 an output folder that is a file", lambda ctx: refused(lambda: run_lock(ctx.shared / "a_file", "w2v2-export").__enter__()),
         ("output_dir='{shared}/a_file' is a file, not a folder",)),
    # ---- already handled before issue 15
    Case("ok: multi-channel audio", lambda ctx: refused(lambda: F([np.zeros((2, 16_000), np.float32)], sampling_rate=SR)),
         ("audio item 0 has 2 channels", "mono='mean'")),
    Case("ok: empty audio", lambda ctx: refused(lambda: F([np.zeros(0, np.float32)], sampling_rate=SR)), ("audio item 0 is empty",)),
    Case("ok: audio shorter than the receptive field", lambda ctx: refused(lambda: F([np.zeros(100, np.float32)], sampling_rate=SR)),
         ("100 samples, fewer than the encoder's receptive field of 400 samples", "pad it with silence")),
    Case("ok: NaN samples given to the feature extractor", lambda ctx: refused(lambda: F([np.full(16_000, np.nan, np.float32)], sampling_rate=SR)),
         ("audio item 0 has 16000 NaN/inf samples", "drop or repair it")),
    Case("ok: another sampling rate without resample", lambda ctx: refused(lambda: F([np.zeros(8_000, np.float32)], sampling_rate=8_000)),
         ("sampled at 8000 Hz but the model expects 16000 Hz", "resample=True")),
    Case("ok: logits given to decode", lambda ctx: refused(lambda: tokenizer(ctx).batch_decode(torch.randn(1, 5, 8))),
         ("got torch.float32 values of shape (1, 5, 8); pass token ids", "logits.argmax(-1)")),
    Case("ok: an unknown case folding", lambda ctx: refused(lambda: W2V2CTCTokenizer.from_texts(["A"], case_folding="title")),
         ("case_folding='title' is not supported; use None, 'lower' or 'upper'",)),
    Case("ok: fine-tuning without a model", lambda ctx: refused(finetune(ctx, model={"from_scratch": False})),
         ("no model given: pass --model_name_or_path",)),
    Case("ok: --streaming without --max_steps", lambda ctx: refused(finetune(ctx, data={"streaming": True}, max_steps=-1)),
         ("--streaming needs --max_steps > 0",)),
    Case("ok: a text column that is not there", lambda ctx: refused(finetune(ctx, data={"text_column": "text"})),
         ("text_column='text' is not a column of split 'train'", "pass --text_column")),
    Case("ok: the collator without raw columns", lambda ctx: refused(lambda: DataCollatorCTCWithPadding(ctx.processor)([{"input_values": [0.0]}])), ("column 'audio' is missing", "remove_unused_columns=False")),
    Case("ok: encoder_lr_scale of 0", lambda ctx: refused(lambda: CTCTrainingArguments(output_dir=str(ctx.root), encoder_lr_scale=0)), ("encoder_lr_scale=0 must be positive", "freeze_finetune_updates")),
    Case("ok: feature_encoder_lr_scale of 0", lambda ctx: refused(lambda: CTCTrainingArguments(output_dir=str(ctx.root), feature_encoder_lr_scale=0)), ("feature_encoder_lr_scale=0 must be positive", "--freeze_feature_encoder true")),
    Case("ok: a negative freeze_finetune_updates", lambda ctx: refused(lambda: FreezeEncoderCallback(-1)), ("freeze_updates must be >= 0, got -1", "use 0")),
    Case("ok: tri-stage phases that do not add up", lambda ctx: refused(lambda: get_tri_stage_schedule(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), 100, phase_ratios=(0.5, 0.2, 0.2))),
         ("phase_ratios must be three non-negative numbers summing to 1", "got [0.5, 0.2, 0.2]", "0.1 0.4 0.5")),
]


def test_the_table_holds_every_item_of_issue_15():
    items = {int(case.name.split()[0]) for case in CASES if case.name[0].isdigit()}
    assert items == set(range(1, 15))  # 1 to 14, each at least once
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_input_case(case, shared, tmp_path):
    ctx = SimpleNamespace(**vars(shared), root=tmp_path)
    seen = case.provoke(ctx)
    for fragment in case.expect:
        fragment = fragment.replace("{tmp}", str(tmp_path)).replace("{shared}", str(shared.shared))
        assert fragment in seen, f"{case.name}: {fragment!r} not in {seen!r}"
