"""Unit tests of the pretraining building blocks: batching, corrupt audio, health, checkpoints, plots."""

import json
import math
import os

import numpy as np
import pytest
import torch
import soundfile as sf
from pretrain_utils import SR, make_audiofolder

from w2v2.processing.audio import load_audio
from w2v2.training.audio_data import AudioBatches, load_audio_dataset, plan_batches
from w2v2.training.checkpointing import COMPLETE_MARKER, latest_checkpoint, load_checkpoint, remove_incomplete, save_checkpoint
from w2v2.training.health import HealthMonitor
from w2v2.training.plotting import plot_curves


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_audiofolder(tmp_path_factory.mktemp("audio") / "data", clips=12, corrupt=1)


def test_plan_batches_respects_budget_and_buckets():
    rng = np.random.default_rng(0)
    durations = rng.uniform(1, 10, 200).tolist()
    batches = plan_batches(durations, batch_seconds=30, max_seconds=6, max_batch_size=None, rng=rng)
    assert sorted(i for b in batches for i in b) == list(range(200))
    for b in batches:
        longest = min(6, max(durations[i] for i in b))
        assert len(b) == 1 or len(b) * longest <= 30
    # bucketing: within a batch, durations are close to each other
    spread = np.mean([max(durations[i] for i in b) - min(durations[i] for i in b) for b in batches])
    assert spread < 1.0


def _batches(folder, **kw):
    kw = {"batch_seconds": 4.0, "max_sample_size": 16_000, "min_sample_size": 4_000, "seed": 3, **kw}
    return AudioBatches(load_audio_dataset(folder, **({"streaming": True} if kw.pop("streaming", False) else {})), **kw)


def test_batches_are_deterministic_and_skip_ahead(folder):
    first = [b.keys for b in _batches(folder).epoch(1) if b is not None]
    again = [b.keys for b in _batches(folder).epoch(1) if b is not None]
    assert first == again
    resumed = [b.keys for b in _batches(folder).epoch(1, skip=2) if b is not None]
    assert resumed == first[2:]
    assert [b.keys for b in _batches(folder).epoch(2) if b is not None] != first


def test_batches_cut_to_shortest_and_crop(folder):
    for batch in _batches(folder).epoch(0):
        if batch is None:
            continue
        assert batch.attention_mask is None
        assert batch.input_values.shape[1] <= 16_000
        assert batch.seconds <= 4.0 + 1e-6 or batch.input_values.shape[0] == 1


@pytest.mark.parametrize("normalize", [False, True])
def test_clips_read_alone_equal_the_clips_of_whole_decodes(folder, normalize):
    # the reader decodes only each crop once it can (with normalize: once the utterance's
    # statistics are known, from the first epoch); the samples must not change
    partial = _batches(folder, normalize=normalize)
    for epoch in range(3):
        whole = _batches(folder, normalize=normalize)
        whole._partial_reads = False
        got = [b for b in partial.epoch(epoch) if b is not None]
        want = [b for b in whole.epoch(epoch) if b is not None]
        assert [b.keys for b in got] == [b.keys for b in want]
        for a, b in zip(got, want):
            assert torch.equal(a.input_values, b.input_values)
        assert partial.corrupt == whole.corrupt * (epoch + 1)  # the broken file is still counted, every epoch
    if normalize:
        assert len(partial._stats) == 12  # every readable utterance's (mean, std), kept after its first decode
        assert all(abs(float(b.input_values.std()) - 1) < 0.5 for b in got)  # normalised by the whole clip's statistics


def test_corrupt_file_is_skipped_and_counted(folder, caplog):
    data = _batches(folder)
    seen = sum(b.input_values.shape[0] for b in data.epoch(0) if b is not None)
    assert data.corrupt == 1
    assert seen == 12
    assert "broken0.flac" in caplog.text


def test_streaming_batches_and_corrupt(folder):
    data = _batches(folder, streaming=True)
    batches = [b for b in data.epoch(0) if b is not None]
    assert sum(b.input_values.shape[0] for b in batches) == 12
    assert data.corrupt == 1
    assert [b.keys for b in _batches(folder, streaming=True).epoch(0) if b is not None] == [b.keys for b in batches]


def test_two_processes_split_the_global_batch(folder):
    whole = [b for b in _batches(folder).epoch(0) if b is not None]
    halves = [[b for b in _batches(folder, batch_seconds=2.0, num_processes=2, process_index=r).epoch(0)] for r in (0, 1)]
    for b, h0, h1 in zip(whole, *halves):
        parts = [h for h in (h0, h1) if h is not None]
        assert sorted(k for h in parts for k in h.keys) == sorted(b.keys)
        for h in parts:
            rows = [b.keys.index(k) for k in h.keys]
            torch.testing.assert_close(h.input_values, b.input_values[rows], rtol=0, atol=0)


def test_bad_budget_is_refused(folder):
    with pytest.raises(ValueError, match="batch_seconds"):
        _batches(folder, batch_seconds=0.1)


K = 20
CHANCE = math.log(K + 1)


@pytest.mark.parametrize(
    "metrics, step, signature",
    [
        ({"contrastive_loss": CHANCE, "contrastive_accuracy": 0.05, "code_perplexity": 30, "grad_norm": 1}, 500, "stuck_at_chance"),
        ({"contrastive_loss": 2.0, "contrastive_accuracy": 0.3, "code_perplexity": 2.2, "grad_norm": 1}, 500, "codebook_collapse"),
        ({"contrastive_loss": 0.001, "contrastive_accuracy": 1.0, "code_perplexity": 30, "grad_norm": 1}, 50, "trivial_task"),
        ({"contrastive_loss": 2.0, "contrastive_accuracy": 0.3, "code_perplexity": 30, "grad_norm": 1e-19}, 500, "vanishing_gradient"),
        ({"contrastive_loss": 2.0, "contrastive_accuracy": 0.3, "code_perplexity": 30, "grad_norm": 1.0}, 500, None),
        ({"contrastive_loss": CHANCE, "contrastive_accuracy": 0.05, "code_perplexity": 30, "grad_norm": 1}, 50, None),
    ],
)
def test_health_signatures(metrics, step, signature):
    monitor = HealthMonitor(K, 2, patience=100, window=3)
    warnings = [w for s in range(step - 2, step + 1) for w in monitor.update(s, metrics)]
    assert [w.split(":")[0] for w in warnings] == ([f"[health] {signature}"] if signature else [])
    assert monitor.update(step + 1, metrics) == []  # reported once


def test_checkpoints_are_atomic_and_rotated(tmp_path):
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    model = accelerator.prepare(torch.nn.Linear(3, 2))
    for step in (1, 2, 3):
        save_checkpoint(accelerator, tmp_path, step, {"epoch": 0, "batch": step}, keep_last=2)
    assert [p.name for p in sorted(tmp_path.glob("checkpoint-*"))] == ["checkpoint-00000002", "checkpoint-00000003"]
    # a save that died before its rename, and a directory without the marker, are never "latest"
    (tmp_path / ".tmp-checkpoint-00000004").mkdir()
    (tmp_path / "checkpoint-00000005").mkdir()
    assert latest_checkpoint(tmp_path).name == "checkpoint-00000003"
    with pytest.raises(ValueError, match="incomplete"):
        load_checkpoint(accelerator, tmp_path / "checkpoint-00000005")
    # only the temporary folder is ours to delete; a checkpoint-* without the marker (transformers'
    # Trainer writes such folders) stays (issue 15, item 1)
    assert remove_incomplete(tmp_path) == [tmp_path / ".tmp-checkpoint-00000004"]
    assert (tmp_path / "checkpoint-00000005").is_dir()
    with torch.no_grad():
        model.weight.zero_()
    state = load_checkpoint(accelerator, latest_checkpoint(tmp_path))
    assert state == {"step": 3, "epoch": 0, "batch": 3}
    assert model.weight.abs().sum() > 0
    assert json.loads((tmp_path / "checkpoint-00000003" / COMPLETE_MARKER).read_text())["step"] == 3


def test_plot_curves(tmp_path):
    history = [{"step": s, "loss": 3 - s / 10, "acc": s / 20} for s in range(1, 11)]
    path = plot_curves(history, tmp_path / "c.png", panels=["loss", ("acc", "accuracy"), "missing"],
                       references={"acc": [(0.05, "chance")]})
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="none of the panels"):
        plot_curves(history, tmp_path / "d.png", panels=["nothing"])


def test_plot_curves_draws_several_runs_on_shared_panels(tmp_path):
    pretrained = [{"step": s, "eval_cer": 1 - s / 20} for s in (5, 10, 15)]
    scratch = [{"step": s, "eval_cer": 1.0} for s in (5, 10, 15)]
    one = plot_curves(pretrained, tmp_path / "one.png", panels=["eval_cer"])
    both = plot_curves({"pretrained": pretrained, "random init": scratch}, tmp_path / "both.png", panels=["eval_cer"])
    assert both.read_bytes()[:4] == b"\x89PNG" and both.read_bytes() != one.read_bytes()
    with pytest.raises(ValueError, match="none of the panels"):
        plot_curves({"a": pretrained, "b": scratch}, tmp_path / "none.png", panels=["wer"])


def test_run_lock_refuses_a_second_run_and_names_the_holder(tmp_path, caplog):
    # issue 15, item 3: two runs into one folder both "succeeded", overwriting each other
    import subprocess
    import sys

    from w2v2.training.checkpointing import LOCK_FILE, run_lock

    out = tmp_path / "run"
    with run_lock(out, "w2v2-pretrain"):
        holder = json.loads((out / LOCK_FILE).read_text())
        assert holder["pid"] == os.getpid() and holder["what"] == "w2v2-pretrain"
        with pytest.raises(ValueError, match=rf"in use by w2v2-pretrain \(pid {os.getpid()} on "):
            with run_lock(out, "w2v2-finetune"):
                pass
    assert not out.exists()  # released, and the folder it made (still empty) is gone
    # a lock left by a process that died is taken over, with a warning
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    out.mkdir()
    (out / LOCK_FILE).write_text(json.dumps({"what": "w2v2-finetune", "pid": int(dead.stdout), "host": __import__("socket").gethostname()}))
    with caplog.at_level("WARNING"), run_lock(out, "w2v2-pretrain"):
        assert json.loads((out / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert "no longer runs" in caplog.text and out.is_dir() and not (out / LOCK_FILE).exists()


def test_saved_feature_extractor_reproduces_a_normalised_training_batch(tmp_path):
    # Utterances shorter than max_sample_size are whole in a padded batch, so the feature
    # extractor pretraining saves with the model (W2V2FeatureExtractor(do_normalize=True, ...))
    # must give the same samples from the same files. The quiet clip (variance ~1e-7) tells the
    # variance floors apart: fairseq's layer_norm 1e-5 would scale it 6x below what 1e-7 gives.
    from w2v2 import W2V2FeatureExtractor

    folder = make_audiofolder(tmp_path / "data", clips=3, seconds=(0.8, 1.5), seed=5)
    quiet, rate = sf.read(folder / "clip001.flac", dtype="float32")
    sf.write(folder / "clip001.flac", 0.002 * quiet, rate)
    W2V2FeatureExtractor(do_normalize=True, return_attention_mask=True, min_samples=400).save_pretrained(tmp_path / "run")
    extractor = W2V2FeatureExtractor.from_pretrained(tmp_path / "run")
    files = {len(audio): audio for audio in (load_audio(p) for p in sorted(folder.glob("*.flac")))}
    assert len(files) == 3 and min(float(a.var()) for a in files.values()) < 1e-6
    batches = AudioBatches(load_audio_dataset(folder), batch_seconds=10.0, max_sample_size=2 * SR, normalize=True,
                           pad=True, max_batch_size=1, seed=1, duration_column=None)  # fmt: skip  (exact lengths from the headers)
    seen = set()
    for batch in batches.epoch(0):
        (values,), (mask,) = batch.input_values, batch.attention_mask
        n = int(mask.sum())
        want = extractor(files[n], sampling_rate=SR, return_tensors="pt")["input_values"][0]
        assert torch.equal(values[:n], want), f"clip of {n} samples: max difference {float((values[:n] - want).abs().max()):.3g}"
        seen.add(n)
    assert seen == set(files)


@pytest.mark.parametrize("speed", [0.8, 1.25])
def test_speed_perturbation_resamples_each_crop_to_its_length(tmp_path, speed):
    """A 1 kHz tone read at speed s comes out at s kHz, in a crop as long as the unperturbed one."""
    t = np.arange(3 * SR) / SR
    for i in range(2):
        sf.write(tmp_path / f"tone{i}.flac", (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), SR)
    (tmp_path / "metadata.csv").write_text("file_name,duration\ntone0.flac,3.0\ntone1.flac,3.0\n")
    kw = {"batch_seconds": 4.0, "max_sample_size": SR, "seed": 0}
    plain = next(b for b in AudioBatches(load_audio_dataset(tmp_path), **kw).epoch(0) if b is not None)
    fast = next(b for b in AudioBatches(load_audio_dataset(tmp_path), speed_perturbation=(speed, speed), **kw).epoch(0) if b is not None)
    assert abs(fast.input_values.shape[1] - plain.input_values.shape[1]) <= 1
    for row in fast.input_values:
        peak_hz = np.argmax(np.abs(np.fft.rfft(row.numpy()))) * SR / len(row)
        assert abs(peak_hz - 1000 * speed) < 5, (peak_hz, speed)
    again = next(b for b in AudioBatches(load_audio_dataset(tmp_path), speed_perturbation=(speed, speed), **kw).epoch(0) if b is not None)
    torch.testing.assert_close(again.input_values, fast.input_values, rtol=0, atol=0)


@pytest.mark.parametrize("bad", [(1.1, 0.9), (0.0, 1.0), (0.9,)])
def test_bad_speed_perturbation_is_refused(folder, bad):
    with pytest.raises(ValueError, match="speed_perturbation"):
        _batches(folder, speed_perturbation=bad)
