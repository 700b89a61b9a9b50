"""w2v2-export --format onnx: parity with torch, int8, the CLI, refusals, transcribe --backend onnx, no torch."""

import json
import subprocess
import sys
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile as sf
import torch

from w2v2 import W2V2Config, W2V2CTCTokenizer, W2V2FeatureExtractor, W2V2ForCTC, W2V2ForPreTraining, W2V2Processor
from w2v2.inference.export import export_onnx
from w2v2.inference.onnx_runner import OnnxCTCModel
from w2v2.inference.transcribe import main as transcribe_main

pytestmark = pytest.mark.slow  # each export runs torch.export and onnxscript: 10-25 s on two cores

RUNNER_FILE = Path(__file__).parents[1] / "w2v2" / "inference" / "onnx_runner.py"


@pytest.fixture(scope="module")
def train_files(tiny_ctc):
    return sorted((Path(tiny_ctc.output_dir).parent / "data" / "train").glob("*.flac"))


@pytest.fixture(scope="module")
def fp32_export(tiny_ctc, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "fp32"
    export_onnx(tiny_ctc.output_dir, out)
    return out


@pytest.fixture(scope="module", params=[1, 2], ids=["plain", "squeezed"])
def layer_norm_export(tmp_path_factory, request):
    """A random layer-norm model (it takes an attention_mask), exported with the CLI in a fresh process;
    once as wav2vec 2.0 and once with SEW's squeeze (``squeeze_factor`` 2), which only w2v2 has."""
    root = tmp_path_factory.mktemp("layer_norm")
    torch.manual_seed(0)
    tokenizer = W2V2CTCTokenizer.from_texts(["HELLO WORLD"])
    model = W2V2ForCTC(W2V2Config.tiny(vocab_size=len(tokenizer), feat_extract_norm="layer", squeeze_factor=request.param))
    model.save_pretrained(root / "model")
    W2V2Processor(W2V2FeatureExtractor(return_attention_mask=True), tokenizer).save_pretrained(root / "model")
    result = subprocess.run([Path(sys.executable).parent / "w2v2-export", "--format", "onnx", str(root / "model"), str(root / "onnx")],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "wrote" in result.stdout
    return root


def _clips(files, lengths):
    audio = [sf.read(f, dtype="float32")[0] for f in files]
    return [np.resize(audio[i % len(audio)], n) for i, n in enumerate(lengths)]  # real speech, cut or repeated to n samples


def test_fp32_logits_match_torch_on_real_audio_of_any_batch_and_length(tiny_ctc, fp32_export, train_files):
    model = W2V2ForCTC.from_pretrained(tiny_ctc.output_dir).eval()
    processor = W2V2Processor.from_pretrained(fp32_export)
    runner = OnnxCTCModel(fp32_export)
    assert not runner.takes_attention_mask  # the tiny recognizer is a group-norm model
    for batch, samples in [(1, 400), (1, 16_000), (3, 23_457), (2, 5_000), (4, 41_000)]:
        inputs = processor([*_clips(train_files, [samples] * batch)], sampling_rate=16_000, return_tensors="np")
        logits = runner(inputs["input_values"])
        with torch.no_grad():
            expected = model(torch.from_numpy(inputs["input_values"])).logits.numpy()
        assert logits.shape == expected.shape == (batch, int(model._get_feat_extract_output_lengths(samples)), model.config.vocab_size)
        np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=1e-4)  # logits reach ~10: fp32 sums in another order
    info = json.loads((fp32_export / "export_info.json").read_text())
    assert info["int8"] is False and info["inputs"] == ["input_values"]
    assert {"model.onnx", "vocab.json", "config.json", "tokenizer_config.json"} <= set(info["files"])


def test_padded_batches_with_attention_mask_match_torch(layer_norm_export, train_files):
    model = W2V2ForCTC.from_pretrained(layer_norm_export / "model").eval()
    runner = OnnxCTCModel(layer_norm_export / "onnx")
    assert runner.takes_attention_mask
    for lengths in ([16_000, 9_600], [700, 31_000, 12_345], [5_000]):
        values, mask = runner.prepare(_clips(train_files, lengths))
        reference = W2V2Processor.from_pretrained(layer_norm_export / "model")(_clips(train_files, lengths), sampling_rate=16_000, padding=True)
        np.testing.assert_allclose(values, np.stack(reference["input_values"]), atol=1e-6)  # prepare() = the feature extractor
        with torch.no_grad():
            expected = model(torch.from_numpy(values), attention_mask=torch.from_numpy(mask)).logits.numpy()
        logits = runner(values, mask)
        for row, n in enumerate(lengths):  # frames beyond an utterance's end are padding in both
            frames = runner.frames(n)
            np.testing.assert_allclose(logits[row, :frames], expected[row, :frames], atol=1e-4, rtol=1e-4)


def test_int8_export_keeps_the_transcripts(tiny_ctc, fp32_export, train_files, tmp_path):
    export_onnx(tiny_ctc.output_dir, tmp_path / "int8", int8=True)
    info = json.loads((tmp_path / "int8" / "export_info.json").read_text())
    assert info["int8"] and info["quantized_ops"] == ["MatMul", "Gemm"]
    assert (tmp_path / "int8" / "model.onnx").stat().st_size < (fp32_export / "model.onnx").stat().st_size
    import onnx

    ops = {node.op_type for node in onnx.load(tmp_path / "int8" / "model.onnx").graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops  # the matrix products are quantized...
    assert "ConvInteger" not in ops and "Conv" in ops  # ...the convolutions are not
    fp32, int8 = OnnxCTCModel(fp32_export), OnnxCTCModel(tmp_path / "int8")
    audio = [sf.read(f, dtype="float32")[0] for f in train_files]
    texts = {name: [runner.transcribe([a])[0] for a in audio] for name, runner in (("fp32", fp32), ("int8", int8))}
    assert all(texts["fp32"]) and jiwer.cer(texts["fp32"], texts["int8"]) <= 0.1, texts
    logits = [runner(*runner.prepare(audio[:1])).ravel() for runner in (fp32, int8)]
    assert np.corrcoef(*logits)[0, 1] > 0.98


def test_runner_transcribes_like_the_processor(tiny_ctc, fp32_export, train_files):
    processor = W2V2Processor.from_pretrained(fp32_export)
    runner = OnnxCTCModel(fp32_export)
    audio = [sf.read(f, dtype="float32")[0] for f in train_files]
    for clip, text in zip(audio, runner.transcribe(audio)):  # different lengths: one at a time (no attention mask)
        ids = runner(*runner.prepare([clip])).argmax(-1)[0]
        assert text == processor.decode(ids)


def test_transcribe_backend_onnx_equals_torch(tiny_ctc, fp32_export, train_files, tmp_path):
    common = ["--inputs", *map(str, train_files), "--output_format", "json", "--progress", "false", "--word_timestamps",
              "--chunk_length_s", "1.0", "--stride_length_s", "0.2", "--batch_size", "2", "--no_lm"]  # several windows per file
    torch_results = transcribe_main(["--model_name_or_path", tiny_ctc.output_dir, "--device", "cpu", "--mixed_precision", "no", *common])
    onnx_results = transcribe_main(["--model_name_or_path", str(fp32_export), "--backend", "onnx", *common])
    assert [r["text"] for r in torch_results] == [r["text"] for r in onnx_results]
    assert [r["words"] for r in torch_results] == [r["words"] for r in onnx_results]
    assert any(len(r["text"]) > 3 for r in onnx_results)
    with pytest.raises(ValueError, match="backend='onnx'"):
        transcribe_main(["--model_name_or_path", str(fp32_export), "--backend", "onnx", "--int8", *common])


def test_refuses_pretraining_folder_and_foreign_output(tiny_ctc, tmp_path):
    W2V2ForPreTraining(W2V2Config.tiny()).save_pretrained(tmp_path / "pretrained")
    with pytest.raises(ValueError, match=r"not a CTC model; export a fine-tuned folder") as error:
        export_onnx(tmp_path / "pretrained", tmp_path / "out")
    assert "\n" not in str(error.value)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"not empty and was not written by w2v2-export") as error:
        export_onnx(tiny_ctc.output_dir, foreign)
    assert "\n" not in str(error.value) and (foreign / "notes.txt").read_text() == "mine"
    result = subprocess.run([Path(sys.executable).parent / "w2v2-export", "--format", "onnx", str(tmp_path / "pretrained"), str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0 and "not a CTC model" in result.stderr


def test_runner_needs_no_torch(fp32_export, train_files):
    code = (
        "import sys, importlib.util, numpy as np, soundfile as sf\n"
        "for name in ('torch', 'transformers'): sys.modules[name] = None  # any import of them now fails\n"
        f"spec = importlib.util.spec_from_file_location('onnx_runner', {str(RUNNER_FILE)!r})\n"
        "runner = importlib.util.module_from_spec(spec); spec.loader.exec_module(runner)\n"
        f"model = runner.OnnxCTCModel({str(fp32_export)!r})\n"
        f"print(model.transcribe([sf.read({str(train_files[0])!r}, dtype='float32')[0]])[0])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == OnnxCTCModel(fp32_export).transcribe([sf.read(train_files[0], dtype="float32")[0]])[0]
    assert result.stdout.strip()
    from w2v2.inference.onnx_runner import NORM_EPS
    from w2v2.processing.audio import NORM_EPS as FEATURE_EXTRACTOR_EPS

    assert NORM_EPS == FEATURE_EXTRACTOR_EPS  # the standalone runner restates the feature extractor's variance floor


@pytest.mark.parametrize("package", ["onnx", "onnxruntime", "onnxscript"])
def test_missing_packages_are_named(tiny_ctc, tmp_path, monkeypatch, package):
    monkeypatch.setitem(sys.modules, package, None)  # importing it now fails, as if not installed
    with pytest.raises(ValueError, match=rf"^{package} is not installed; pip install .*w2v2\[onnx\]"):
        export_onnx(tiny_ctc.output_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before writing anything
    if package == "onnxruntime":
        with pytest.raises(ValueError, match="onnxruntime is not installed"):
            OnnxCTCModel(tmp_path)


def test_an_earlier_export_is_replaced_file_by_file(fp32_export, tmp_path):
    from w2v2.inference.export import _claim_out_dir

    out = tmp_path / "out"
    out.mkdir()
    (out / "export_info.json").write_text(json.dumps({"complete": False, "files": ["model.onnx"]}))  # a failed export
    (out / "model.onnx").write_text("half-written")
    (out / "kept.txt").write_text("not ours")
    _claim_out_dir(out)
    assert sorted(p.name for p in out.iterdir()) == ["export_info.json", "kept.txt"]  # only what the exporter listed goes
    assert json.loads((out / "export_info.json").read_text())["complete"] is False  # until the new export finishes
    info = json.loads((fp32_export / "export_info.json").read_text())
    assert info["complete"] and set(info["files"]) == {p.name for p in fp32_export.iterdir()} - {"export_info.json"}
