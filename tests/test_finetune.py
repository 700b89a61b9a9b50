"""End-to-end CTC fine-tuning on a few spoken utterances (tiny models, one CPU thread)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from finetune_helpers import UTTERANCES, write_audiofolder
from transformers import Wav2Vec2Config, Wav2Vec2ForPreTraining

from w2v2 import W2V2ForCTC, W2V2Processor
from w2v2.training.ctc_trainer import CTCTrainingArguments
from w2v2.training.finetune import DataArguments, ModelArguments, finetune_ctc, main
from w2v2.inference.transcribe import Transcriber

pytestmark = pytest.mark.slow


def test_tiny_model_memorises_its_training_utterances(tiny_ctc):
    losses = [entry["loss"] for entry in tiny_ctc.trainer.state.log_history if "loss" in entry]
    assert losses[-1] < losses[0] / 20  # training CTC loss goes down
    assert tiny_ctc.metrics["train_wer"] == 0.0 and tiny_ctc.metrics["train_cer"] == 0.0
    # what was saved transcribes them exactly, one file at a time
    transcriber = Transcriber.from_pretrained(tiny_ctc.output_dir, device="cpu")
    files = sorted((Path(tiny_ctc.output_dir).parent / "data" / "train").glob("*.flac"))
    results = list(transcriber.transcribe(files))
    assert [r["text"] for r in results] == list(UTTERANCES)


def test_saved_folder_has_processor_metrics_and_model_card(tiny_ctc):
    out = Path(tiny_ctc.output_dir)
    processor = W2V2Processor.from_pretrained(out)
    model = W2V2ForCTC.from_pretrained(out)
    assert model.config.vocab_size == len(processor.tokenizer)
    assert model.config.pad_token_id == processor.tokenizer.pad_token_id == 0
    card = (out / "README.md").read_text()
    assert "train_wer" in card and "automatic-speech-recognition" in card
    assert json.loads((out / "all_results.json").read_text())["train_wer"] == 0.0


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    root = tmp_path_factory.mktemp("spoken")
    write_audiofolder(root, UTTERANCES[:2], split="train")
    return root


@pytest.mark.parametrize("feat_extract_norm", ["group", "layer"])
def test_fine_tunes_from_a_transformers_pretraining_checkpoint(spoken, tmp_path, feat_extract_norm):
    config = Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, codevector_dim=16, proj_codevector_dim=16,
        num_codevectors_per_group=8, feat_extract_norm=feat_extract_norm, do_stable_layer_norm=feat_extract_norm == "layer",
    )  # fmt: skip
    torch.manual_seed(0)
    Wav2Vec2ForPreTraining(config).save_pretrained(tmp_path / "hf")
    pretrained = Wav2Vec2ForPreTraining.from_pretrained(tmp_path / "hf").state_dict()
    result = finetune_ctc(
        ModelArguments(model_name_or_path=str(tmp_path / "hf")),
        DataArguments(dataset_name_or_path=str(spoken), train_split="train", eval_split="", test_splits=["train"]),
        CTCTrainingArguments(output_dir=str(tmp_path / "out"), max_steps=4, learning_rate=1e-3, per_device_train_batch_size=2,
                             use_cpu=True, disable_tqdm=True, save_strategy="no", eval_strategy="no"),
    )  # fmt: skip
    model = result.trainer.model
    assert result.trainer.args.freeze_finetune_updates == 3  # 10/13 of the updates, as in fairseq base_10m
    # the encoder came from the checkpoint (the feature encoder stayed frozen), the head is new
    weight = "wav2vec2.feature_extractor.conv_layers.1.conv.weight"
    assert torch.equal(model.state_dict()[weight], pretrained[weight])
    assert model.lm_head.out_features == len(W2V2Processor.from_pretrained(result.output_dir).tokenizer)
    assert model.config.mask_time_prob == 0.65 and model.config.mask_feature_length == 3  # 64/768 of 32 channels
    assert W2V2Processor.from_pretrained(result.output_dir).feature_extractor.return_attention_mask == (feat_extract_norm == "layer")
    assert result.metrics["train_cer"] >= 0.0  # insertions can push it past 1 after 4 updates


def test_command_line_runs_and_reports_errors(spoken, tmp_path, capsys):
    # --push_to_hub is exercised for real against the loopback Hub in tests/test_hub.py.
    metrics = main([
        "--from_scratch", "--dataset_name_or_path", str(spoken), "--train_split", "train", "--eval_split", "train",
        "--test_splits", "train", "--max_steps", "2", "--eval_steps", "2", "--save_steps", "2", "--output_dir", str(tmp_path),
        "--use_cpu", "--disable_tqdm", "true", "--mask_feature_prob", "0",
    ])  # fmt: skip
    assert "train_wer" in metrics and (tmp_path / "vocab.json").exists()
    assert '"train_wer"' in capsys.readouterr().out
    assert "| train_wer |" in (tmp_path / "README.md").read_text()  # the model card has the WER table
    with pytest.raises(ValueError, match="--model_name_or_path"):
        main(["--dataset_name_or_path", str(spoken), "--train_split", "train", "--output_dir", str(tmp_path)])
    for flag in ("--train_split", "--eval_split", "--test_splits"):  # the error names the flag and the splits there are
        with pytest.raises(ValueError, match=rf"{flag} 'dev' is neither a sub-folder of .* \(it has \['train'\]\)"):
            main(["--from_scratch", "--dataset_name_or_path", str(spoken), "--train_split", "train", "--eval_split", "",
                  flag, "dev", "--output_dir", str(tmp_path / "other")])  # fmt: skip
    with pytest.raises(ValueError, match="text_column='text'"):
        main(["--from_scratch", "--dataset_name_or_path", str(spoken), "--train_split", "train", "--text_column", "text",
              "--output_dir", str(tmp_path / "other")])  # fmt: skip


def test_an_earlier_run_is_refused_then_resumed_with_one_flag(spoken, tmp_path):
    # issue 15, item 2: a second run into the folder started over and rotated the first one's checkpoints away
    flags = ["--from_scratch", "--dataset_name_or_path", str(spoken), "--train_split", "train", "--eval_split", "train",
             "--test_splits", "train", "--max_steps", "4", "--eval_steps", "2", "--save_steps", "2", "--output_dir",
             str(tmp_path), "--use_cpu", "--disable_tqdm", "true", "--mask_feature_prob", "0", "--seed", "0"]  # fmt: skip
    first = main(flags)
    checkpoints = sorted(p.name for p in tmp_path.glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-2", "checkpoint-4"]
    with pytest.raises(ValueError, match="holds an earlier fine-tuning run .*--resume_from_checkpoint last"):
        main(flags)
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == checkpoints  # untouched
    again = main([*flags, "--resume_from_checkpoint", "last"])  # the finished run: nothing left to train
    assert again["train_wer"] == pytest.approx(first["train_wer"])
    with pytest.raises(ValueError, match="holds no checkpoint"):
        main([*flags, "--output_dir", str(tmp_path / "empty"), "--resume_from_checkpoint", "last"])


def test_a_bad_audio_file_is_left_out_and_named_not_fatal(tmp_path, caplog):
    # issue 15, item 6: one undecodable file ended w2v2-finetune mid-run
    import shutil

    root = tmp_path / "data"
    write_audiofolder(root, UTTERANCES[:3], split="train")
    (root / "train" / "broken.flac").write_bytes(b"fLaC" + bytes(range(256)) * 8)
    with open(root / "train" / "metadata.csv", "a") as f:
        f.write("broken.flac,HELLO WORLD,1.5\n")
    shutil.copytree(root / "train", root / "test")
    with caplog.at_level("WARNING"):
        metrics = main(["--from_scratch", "--dataset_name_or_path", str(root), "--train_split", "train", "--eval_split",
                        "test", "--test_splits", "test", "--max_steps", "4", "--eval_steps", "2", "--save_steps", "2",
                        "--per_device_train_batch_size", "2", "--output_dir", str(tmp_path / "out"), "--use_cpu",
                        "--disable_tqdm", "true", "--mask_feature_prob", "0", "--report_to", "none"])  # fmt: skip
    assert metrics["test_wer"] >= 0 and metrics["train_runtime"] > 0
    assert "leaving out of the batch" in caplog.text and "broken.flac" in caplog.text


def test_console_script_exits_with_status_zero(spoken, tmp_path):
    script = Path(sys.executable).parent / "w2v2-finetune"  # installed by pip with the package
    result = subprocess.run(
        [str(script), "--from_scratch", "--dataset_name_or_path", str(spoken), "--train_split", "train", "--eval_split", "train",
         "--test_splits", "train", "--max_steps", "1", "--eval_steps", "1", "--save_steps", "1", "--output_dir", str(tmp_path),
         "--use_cpu", "--disable_tqdm", "true", "--report_to", "none"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert '"train_cer"' in result.stdout and (tmp_path / "model.safetensors").exists()


def test_streaming_dataset(spoken, tmp_path):
    result = finetune_ctc(
        ModelArguments(from_scratch=True, mask_feature_prob=0.0),
        DataArguments(dataset_name_or_path=str(spoken), train_split="train", eval_split="", test_splits=[], streaming=True),
        CTCTrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2, use_cpu=True,
                             disable_tqdm=True, save_strategy="no", eval_strategy="no"),
    )  # fmt: skip
    assert result.trainer.state.global_step == 2 and (tmp_path / "model.safetensors").exists()


def test_durations_come_from_file_headers_when_metadata_has_none(spoken, tmp_path):
    import shutil

    from w2v2.training.finetune import load_ctc_split

    folder = tmp_path / "train"
    shutil.copytree(spoken / "train", folder)
    rows = (folder / "metadata.csv").read_text().splitlines()
    (folder / "metadata.csv").write_text("\n".join(",".join(r.split(",")[:2]) for r in rows) + "\n")  # no duration
    ds = load_ctc_split(DataArguments(dataset_name_or_path=str(tmp_path)), "train", max_seconds=20.0)
    expected = [float(r.split(",")[2]) for r in rows[1:]]
    assert ds["duration"] == pytest.approx(expected, abs=1e-3)
    assert ds.features["audio"].decode is False  # nothing was decoded to get them


def test_rows_with_empty_or_missing_transcripts_are_dropped(spoken, tmp_path):
    import shutil

    from w2v2.training.finetune import load_ctc_split

    folder = tmp_path / "train"
    shutil.copytree(spoken / "train", folder)
    header, *rows = (folder / "metadata.csv").read_text().splitlines()
    cells = [r.split(",") for r in rows]
    cells[0][1] = ""  # a missing cell: datasets reads it as None
    cells[1][1] = "?!"  # only punctuation: empty once normalised
    (folder / "metadata.csv").write_text("\n".join([header] + [",".join(c) for c in cells]) + "\n")
    ds = load_ctc_split(DataArguments(dataset_name_or_path=str(tmp_path)), "train", max_seconds=20.0)
    assert ds["transcription"] == [c[1] for c in cells[2:]]
