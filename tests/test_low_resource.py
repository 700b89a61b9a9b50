"""The low-resource example end to end, in its smoke variant (a minute or two on 2 cores)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_smoke_variant_runs_every_step_and_reports(tmp_path):
    out = tmp_path / "lr"
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / "low_resource" / "run.py"), "--variant", "smoke", "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"Results: {out / 'results.md'}" in result.stdout  # the output says where things are

    report = json.loads((out / "results.json").read_text())
    runs = {r["run"]: r for r in report["runs"]}
    assert set(runs) == {"pretrained_train_10min", "scratch_train_10min"}
    for run in runs.values():
        for split in ("test_clean", "test_other"):
            assert run[f"{split}_wer"] >= 0 and run[f"{split}_cer"] >= 0
        model_dir = out / run["run"]
        assert {"model.safetensors", "config.json", "vocab.json", "processor_config.json", "finetuning_curves.png"} <= {p.name for p in model_dir.iterdir()}
    assert (out / "pretrain" / "model.safetensors").exists() and (out / "pretrain" / "pretraining_curves.png").exists()
    card = (out / "pretrain" / "README.md").read_text()
    assert "| speed_perturbation | (0.9, 1.1) |" in card and "| learning_rate | 0.003 |" in card  # the example's pretraining
    assert "| train_10min | pretrained |" in (out / "results.md").read_text()
    assert re.search(r"CER ratio pretrained / random init, greedy: test_clean \*\*\d\.\d{3}\*\*.*\(goal: test_clean <= 0\.5, "
                     r"test_other < 1: (met|missed)\)", (out / "results.md").read_text())  # the bar and the verdict
    # beam search with the corpus's word LM beside greedy decoding, and utterances a person can read
    for run in runs.values():
        assert 0 <= run["test_clean_lm_cer"] and run["lm_alpha"] >= 0
        assert run["test_clean_greedy_cer"] == pytest.approx(run["test_clean_cer"], abs=0.02)  # the Trainer's own figure
        assert len(run["examples"]) == 3 and all(e["reference"] for e in run["examples"])
    assert result.stdout.count("    with LM:   ") == 6 and result.stdout.count("    reference: ") == 6
    assert (out / "lm" / "words_3gram.arpa").read_text().startswith("\\data\\")
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"  # validation CER of both inits
    assert all(run["validation_cer_curve"] and run["validation_cer_curve"][-1][0] == run["updates"] for run in runs.values())
    # Both fine-tuning runs got the same budget, and the baseline shares the pretrained architecture.
    pre, base = (json.loads((out / name / "config.json").read_text()) for name in ("pretrained_train_10min", "scratch_train_10min"))
    assert pre["hidden_size"] == base["hidden_size"] and pre["conv_dim"] == base["conv_dim"]
    assert runs["pretrained_train_10min"]["updates"] == runs["scratch_train_10min"]["updates"] > 0
    for name in runs:  # the example's schedule, which holds the peak lr for 70% of the updates, for both inits
        card = (out / name / "README.md").read_text()
        assert "| lr_schedule | tri-stage 0.1/0.7/0.2 |" in card
        assert "| freeze_feature_encoder | False |" in card  # smoke, as short: both inits train f (after the head-only phase)
    assert "| feature_encoder_lr_scale | 0.1 |" in (out / "pretrained_train_10min" / "README.md").read_text()  # f at 0.1 x lr
