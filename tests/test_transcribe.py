"""w2v2-transcribe: chunked long audio in bounded memory, word timestamps, output formats, LM beam search."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from finetune_helpers import UTTERANCES, long_recording

from w2v2 import W2V2Config, W2V2CTCTokenizer, W2V2FeatureExtractor, W2V2ForCTC, W2V2Processor
from w2v2.inference.transcribe import Transcriber, build_lm_decoder, main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def train_files(tiny_ctc):
    return sorted((Path(tiny_ctc.output_dir).parent / "data" / "train").glob("*.flac"))


def _reset_peak_rss() -> bool:
    """Reset VmHWM, the peak resident memory (Linux: write 5 to clear_refs); False where impossible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def test_three_minute_file_in_bounded_memory_with_word_timestamps(tiny_ctc, tmp_path):
    transcriber = Transcriber.from_pretrained(tiny_ctc.output_dir, device="cpu", batch_size=2, chunk_length_s=10,
                                              stride_length_s=2)  # fmt: skip
    peaks, windows, fed = {}, {}, []
    # the length of every input the model is given
    transcriber.model.register_forward_pre_hook(lambda module, args, kwargs: fed.append(kwargs["input_values"].shape[-1]),
                                                with_kwargs=True)  # fmt: skip
    for minutes in (1, 3):
        path = tmp_path / f"{minutes}min.flac"
        long_recording(path, 60 * minutes)
        can_measure = _reset_peak_rss()
        fed.clear()
        (result,) = transcriber.transcribe([path], word_timestamps=True)
        peaks[minutes] = _vm_hwm_mb() if can_measure else None
        windows[minutes] = max(fed)
        duration = sf.info(str(path)).duration
        assert result["duration"] == pytest.approx(duration, abs=1e-3) == 60 * minutes
        words = result["words"]
        assert len(words) > 20 * minutes  # the model speaks all along the file, not in the first window only
        starts = [w["start"] for w in words]
        assert starts == sorted(starts)
        assert all(0 <= w["start"] < w["end"] <= duration for w in words)
        assert words[-1]["end"] > duration - 10  # the end of the file was read
    assert windows[1] == windows[3] == 10 * 16_000  # the model never sees more than one window
    if peaks[1] is not None:
        # 3 minutes of float32 audio is 11.5 MB and a whole-file forward pass of even this
        # tiny model needs > 70 MB per conv layer: peak memory must not follow the length
        assert peaks[3] < peaks[1] + 25, peaks


@pytest.mark.parametrize("seconds,rate,stride", [
    (0.5, 16_000, 1.0), (10.0, 16_000, 1.0), (10.3, 16_000, 1.0), (16.0, 16_000, 1.0), (37.7, 16_000, 1.0), (23.3, 22_050, 1.0),
    (8.01, 16_000, 0.0),  # no stride asked for: context of one receptive field (without, the last window held 10 ms)
])  # fmt: skip
def test_kept_frames_tile_the_file_exactly(tmp_path, seconds, rate, stride):
    model = W2V2ForCTC(W2V2Config.tiny(vocab_size=5)).eval()
    tokenizer = W2V2CTCTokenizer.from_texts(["AB"])
    transcriber = Transcriber(model, W2V2Processor(W2V2FeatureExtractor(), tokenizer), chunk_length_s=4.0,
                              stride_length_s=stride, batch_size=3)  # fmt: skip
    sf.write(tmp_path / "a.wav", np.random.default_rng(0).uniform(-0.5, 0.5, int(seconds * rate)).astype(np.float32), rate)
    windows = list(transcriber._windows(0, tmp_path / "a.wav"))  # resampled to 16 kHz while streaming
    overlap = 2 * transcriber.context  # windows overlap by 2 contexts
    assert overlap == (2 * 16_000 if stride else 2 * 640)  # 1 s, or 2 frames (>= the 400-sample receptive field)
    samples = sum(len(w.samples) for w in windows) - (len(windows) - 1) * overlap
    assert samples == pytest.approx(seconds * 16_000, abs=1)
    kept = sum(len(frames) for frames in transcriber._forward(windows))
    assert kept == int(model._get_feat_extract_output_lengths(torch.tensor(samples)))  # frames of the whole file
    assert max(len(w.samples) for w in windows) <= 4 * 16_000


def test_command_line_on_a_folder_text_and_json(tiny_ctc, train_files, tmp_path, capsys):
    folder = train_files[0].parent
    results = main(["--model_name_or_path", tiny_ctc.output_dir, "--inputs", str(folder), "--output_format", "json",
                    "--output_file", str(tmp_path / "out.json"), "--word_timestamps", "--batch_size", "3",
                    "--progress", "false"])  # fmt: skip
    saved = json.loads((tmp_path / "out.json").read_text())
    assert saved == results and [r["text"] for r in saved] == list(UTTERANCES)
    assert [w["word"] for w in saved[0]["words"]] == UTTERANCES[0].split()
    main(["--model_name_or_path", tiny_ctc.output_dir, "--inputs", str(train_files[1]), "--progress", "false"])
    assert capsys.readouterr().out == UTTERANCES[1] + "\n"
    with pytest.raises(ValueError, match="does not exist"):
        main(["--model_name_or_path", tiny_ctc.output_dir, "--inputs", str(tmp_path / "missing.wav")])


def test_a_file_too_short_for_one_frame_is_empty_and_the_others_go_on(tiny_ctc, train_files, tmp_path, caplog):
    sf.write(tmp_path / "click.wav", np.zeros(320, np.float32), 16_000)  # 20 ms: < the 400-sample receptive field
    transcriber = Transcriber.from_pretrained(tiny_ctc.output_dir, device="cpu")
    results = list(transcriber.transcribe([tmp_path / "click.wav", train_files[0]]))
    assert [r["text"] for r in results] == ["", UTTERANCES[0]]
    assert "click.wav has 320 samples" in caplog.text


def test_bad_files_are_listed_and_every_good_one_is_written(tiny_ctc, train_files, tmp_path):
    # issue 15, item 6: one bad file ended the command, in JSON mode before any output was written
    (tmp_path / "garbage.flac").write_bytes(b"fLaC" + bytes(range(256)) * 8)  # header unreadable
    nan = np.full(16_000, 0.1, np.float32)
    nan[100] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 16_000, subtype="FLOAT")
    inputs = [str(train_files[0]), str(tmp_path / "garbage.flac"), str(train_files[1]), str(tmp_path / "nan.wav"), str(train_files[2])]
    script = Path(sys.executable).parent / "w2v2-transcribe"
    out = tmp_path / "out.json"
    result = subprocess.run([str(script), "--model_name_or_path", tiny_ctc.output_dir, "--inputs", *inputs, "--output_format",
                             "json", "--output_file", str(out), "--progress", "false"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 1  # not a success, yet nothing good is lost
    written = json.loads(out.read_text())
    assert [r["path"] for r in written] == inputs
    assert [r.get("text") for r in written] == [UTTERANCES[0], None, UTTERANCES[1], None, UTTERANCES[2]]
    assert "garbage.flac" in written[1]["error"] and "NaN" in written[3]["error"]
    assert "2 of 5 files could not be transcribed" in result.stderr and "nan.wav" in result.stderr.splitlines()[-1]


def test_console_script_exits_with_status_zero(tiny_ctc, train_files):
    script = Path(sys.executable).parent / "w2v2-transcribe"  # installed by pip with the package
    result = subprocess.run([str(script), "--model_name_or_path", tiny_ctc.output_dir, "--inputs", str(train_files[0]),
                             "--progress", "false"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == UTTERANCES[0] + "\n"


def test_runs_a_transformers_format_checkpoint(tiny_ctc, train_files, tmp_path):
    from transformers import Wav2Vec2ForCTC

    from w2v2.transformers_export import export_transformers

    export_transformers(tiny_ctc.output_dir, tmp_path / "hf")
    assert Wav2Vec2ForCTC.from_pretrained(tmp_path / "hf").config.model_type == "wav2vec2"
    texts = [r["text"] for r in Transcriber.from_pretrained(str(tmp_path / "hf"), device="cpu").transcribe(train_files)]
    assert texts == list(UTTERANCES)


def test_rejects_windows_without_a_middle(tiny_ctc):
    with pytest.raises(ValueError, match="chunk_length_s > 2 \\* stride_length_s"):
        Transcriber.from_pretrained(tiny_ctc.output_dir, device="cpu", chunk_length_s=4, stride_length_s=2)


def _write_bigram_arpa(path: Path, sentences: tuple[str, ...]) -> None:
    """A hand-written bigram LM of the sentences (kenlm needs at least bigrams); uniform probabilities."""
    words = sorted({w for text in sentences for w in text.split()})
    unigrams = ["<s>", "</s>", "<unk>", *words]
    bigrams = sorted({pair for text in sentences for pair in zip(["<s>", *text.split()], [*text.split(), "</s>"])})
    lines = ["\\data\\", f"ngram 1={len(unigrams)}", f"ngram 2={len(bigrams)}", "", "\\1-grams:"]
    lines += [f"{np.log10(1 / len(unigrams)):.4f}\t{w}\t-0.3" for w in unigrams]
    lines += ["", "\\2-grams:"]
    lines += [f"{np.log10(0.5):.4f}\t{a} {b}" for a, b in bigrams]
    lines += ["", "\\end\\", ""]
    path.write_text("\n".join(lines))


def test_lm_beam_search_with_a_tiny_arpa_model(tiny_ctc, train_files, tmp_path):
    pytest.importorskip("pyctcdecode")
    pytest.importorskip("kenlm")
    arpa = tmp_path / "words.arpa"
    _write_bigram_arpa(arpa, UTTERANCES)
    transcriber = Transcriber.from_pretrained(tiny_ctc.output_dir, device="cpu")
    transcriber.lm_decoder = build_lm_decoder(transcriber.processor.tokenizer, str(arpa), beam_width=8)
    results = list(transcriber.transcribe(train_files, word_timestamps=True))
    assert [r["text"] for r in results] == list(UTTERANCES)
    assert [w["word"] for w in results[3]["words"]] == UTTERANCES[3].split()
    assert all(0 <= w["start"] < w["end"] <= r["duration"] for r in results for w in r["words"])
    with pytest.raises(ValueError, match="is not a file"):
        build_lm_decoder(transcriber.processor.tokenizer, str(tmp_path / "none.arpa"))


def test_bf16_and_int8_keep_the_transcripts(tiny_ctc, train_files):
    model = W2V2ForCTC.from_pretrained(tiny_ctc.output_dir)
    processor = W2V2Processor.from_pretrained(tiny_ctc.output_dir)
    default = Transcriber(model, processor)
    assert default.batch_size == 1 and default.mixed_precision == "no"
    for options in (dict(mixed_precision="bf16"), dict(int8=True), dict(mixed_precision="auto")):
        transcriber = Transcriber(model, processor, **options)
        assert [r["text"] for r in transcriber.transcribe(train_files)] == list(UTTERANCES), options
    assert isinstance(Transcriber(model, processor, int8=True).model.wav2vec2.encoder.layers[0].feed_forward.intermediate_dense,
                      torch.ao.nn.quantized.dynamic.Linear)
    with pytest.raises(ValueError, match="mixed_precision='half' is not supported"):
        Transcriber(model, processor, mixed_precision="half")
