"""Export a model: ONNX for CPU deployment (optionally with int8 matrix products), or
transformers' format for people without w2v2 (``--format transformers``, any folder w2v2
writes: :func:`w2v2.transformers_export.export_transformers`).

    w2v2-export --format transformers runs/pt runs/pt-hf

    w2v2-export --format onnx [--int8] runs/base-10min exported/

writes ``exported/`` with ``model.onnx`` (``input_values`` (batch, samples) float32 [+
``attention_mask`` (batch, samples) int64, for layer-norm encoders, whose feature extractor
returns one] -> ``logits`` (batch, frames, vocab); batch and samples are dynamic), the
processor's files, ``config.json`` and ``export_info.json`` (how it was made). The graph
comes from ``torch.onnx.export(..., dynamo=True)`` (torch.export, then onnxscript).
``--int8`` quantizes the weights of the matrix products (MatMul, Gemm) with onnxruntime's
dynamic quantization; the convolutions stay fp32 (quantized convolutions ran slower,
espnet_onnx#25). Run the folder without torch with :class:`w2v2.inference.onnx_runner.OnnxCTCModel`,
or with ``w2v2-transcribe --backend onnx``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from ..configuration import W2V2Config
from ..modeling import W2V2ForCTC
from ..processing import W2V2Processor, receptive_field
from ..processing.audio import SAMPLE_RATE
from .onnx_runner import INFO_FILE, MODEL_FILE, OnnxCTCModel

__all__ = ["EXPORT_FORMATS", "OnnxTranscriberModel", "export_onnx", "main"]

EXPORT_FORMATS = ("onnx", "transformers")
DEFAULT_OPSET = 18  # torch.onnx's dynamo exporter's own
CTC_ARCHITECTURES = ("W2V2ForCTC", "Wav2Vec2ForCTC")
QUANTIZED_OPS = ["MatMul", "Gemm"]  # not Conv (module docstring)
FP32_TEMP_FILE = ".model-fp32.onnx"  # the graph before quantization, with --int8


class _LogitsOnly(torch.nn.Module):
    """``W2V2ForCTC`` with tensor inputs and one tensor output, as torch.export wants."""

    def __init__(self, model: W2V2ForCTC):
        super().__init__()
        self.model = model

    def forward(self, input_values, attention_mask=None):
        return self.model(input_values, attention_mask=attention_mask).logits  # (B, T, V)


def _check_model_dir(model_dir: Path) -> None:
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise ValueError(f"model_dir={str(model_dir)!r} has no config.json; pass a folder written by w2v2-finetune.")
    architectures = json.loads(config_file.read_text()).get("architectures") or []
    if not set(architectures) & set(CTC_ARCHITECTURES):
        raise ValueError(
            f"model_dir={str(model_dir)!r} holds {architectures or 'no architecture'}, not a CTC model; "
            "export a fine-tuned folder (w2v2-finetune's output_dir), not a pretraining one."
        )
    if not (model_dir / "vocab.json").is_file():
        raise ValueError(f"model_dir={str(model_dir)!r} has no vocab.json; save the processor there (processor.save_pretrained).")


def _claim_out_dir(out_dir: Path) -> None:
    """Make ``out_dir`` ready to write: new, empty, or an earlier export (whose files are removed)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir={str(out_dir)!r} is a file; pass a new or empty folder.")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        out_dir.mkdir(parents=True, exist_ok=True)
    elif not (out_dir / INFO_FILE).is_file():
        raise ValueError(f"out_dir={str(out_dir)!r} is not empty and was not written by w2v2-export; pass a new or empty folder.")
    else:
        for name in json.loads((out_dir / INFO_FILE).read_text()).get("files", []):
            (out_dir / name).unlink(missing_ok=True)
    _write_info(out_dir, {"complete": False, "files": [MODEL_FILE, FP32_TEMP_FILE]})  # ours, even if this export fails


def _write_info(out_dir: Path, info: dict) -> None:
    (out_dir / INFO_FILE).write_text(json.dumps(info, indent=1) + "\n")


def export_onnx(model_dir: str | Path, out_dir: str | Path, *, int8: bool = False, opset: int = DEFAULT_OPSET) -> Path:
    """Write ``out_dir/model.onnx`` and the processor's files for the CTC model in ``model_dir``.

    Args:
        model_dir: a fine-tuned ``W2V2ForCTC`` folder (safetensors, config, processor files).
        out_dir: a new or empty folder, or an earlier export to replace.
        int8: dynamic int8 quantization of MatMul/Gemm weights (onnxruntime.quantization).
        opset: ONNX opset of the graph.

    Returns:
        the path of ``model.onnx``.
    """
    try:
        import onnx  # noqa: F401  (torch.onnx needs onnx and onnxscript)
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise ValueError(f"{error.name} is not installed; pip install onnx onnxruntime onnxscript (or w2v2[onnx]).") from error
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    _check_model_dir(model_dir)
    _claim_out_dir(out_dir)
    started = time.perf_counter()
    model = W2V2ForCTC.from_pretrained(model_dir).eval()
    processor = W2V2Processor.from_pretrained(model_dir)
    config = model.config
    with_mask = bool(processor.feature_extractor.return_attention_mask)

    # example inputs: 2 x 1 s, the second half-padded; lengths below the receptive field are refused by the model
    x = 0.1 * torch.randn(2, SAMPLE_RATE, generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1)
    samples = torch.export.Dim("samples", min=receptive_field(config.conv_kernel, config.conv_stride))
    args, dynamic = (x,), {"input_values": {0: batch, 1: samples}}
    if with_mask:
        mask = torch.ones(2, SAMPLE_RATE, dtype=torch.long)
        mask[1, SAMPLE_RATE // 2 :] = 0
        args, dynamic = (x, mask), {**dynamic, "attention_mask": {0: batch, 1: samples}}
    fp32_path = out_dir / (FP32_TEMP_FILE if int8 else MODEL_FILE)
    with torch.no_grad():
        torch.onnx.export(_LogitsOnly(model).eval(), args, str(fp32_path), input_names=list(dynamic), output_names=["logits"],
                          dynamic_shapes=dynamic, opset_version=opset, dynamo=True, external_data=False, verbose=False)  # fmt: skip
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(fp32_path, out_dir / MODEL_FILE, op_types_to_quantize=QUANTIZED_OPS, weight_type=QuantType.QInt8)
        fp32_path.unlink()

    before = set(p.name for p in out_dir.iterdir())  # model.onnx and export_info.json
    processor.save_pretrained(out_dir)
    config.save_pretrained(out_dir)
    written = sorted({MODEL_FILE} | (set(p.name for p in out_dir.iterdir()) - before) | {"config.json"})
    tokenizer = processor.tokenizer
    info = {
        "complete": True,
        "format": "onnx",
        "source": str(model_dir.resolve()),
        "int8": int8,
        "quantized_ops": QUANTIZED_OPS if int8 else [],
        "opset": opset,
        "inputs": list(dynamic),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "seconds": round(time.perf_counter() - started, 1),
        # what the torch-free runner needs to count frames and decode
        "conv_kernel": list(config.conv_kernel),
        "conv_stride": list(config.conv_stride),
        "tokenizer": {"pad_token_id": tokenizer.pad_token_id, "unk_token": tokenizer.unk_token,
                      "word_delimiter_token": tokenizer.word_delimiter_token},  # fmt: skip
        "files": written,
    }
    _write_info(out_dir, info)
    return out_dir / MODEL_FILE


class OnnxTranscriberModel:
    """An export folder behind the few parts of ``W2V2ForCTC`` that ``Transcriber`` uses
    (``config``, ``device``, ``eval``, ``_get_feat_extract_output_lengths``, ``(...).logits``),
    the forward running on onnxruntime."""

    device = torch.device("cpu")

    def __init__(self, folder: str | Path, *, num_threads: int | None = None):
        self.runner = OnnxCTCModel(folder, num_threads=num_threads)
        self.config = W2V2Config.from_pretrained(folder)

    def eval(self) -> OnnxTranscriberModel:
        return self

    _get_feat_extract_output_lengths = W2V2ForCTC._get_feat_extract_output_lengths  # reads self.config only

    def __call__(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None) -> SimpleNamespace:
        mask = None if attention_mask is None else attention_mask.numpy()
        logits = self.runner(input_values.numpy(), mask)  # (B, T, V)
        return SimpleNamespace(logits=torch.from_numpy(np.ascontiguousarray(logits)))


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="w2v2-export", description="Export a model for deployment or for transformers.")
    parser.add_argument("--format", required=True, choices=EXPORT_FORMATS,
                        help="onnx: a fine-tuned CTC model for onnxruntime; transformers: any w2v2 folder for transformers alone")
    parser.add_argument("--int8", action="store_true", help="dynamic int8 quantization of the matrix products (not the convolutions)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    parser.add_argument("model", help="onnx: a fine-tuned CTC folder (w2v2-finetune's output_dir); transformers: any "
                                      "folder w2v2 writes, checkpoints included")
    parser.add_argument("out", help="onnx: a new or empty folder, or an earlier export to replace; transformers: a new "
                                    "or empty folder")
    args = parser.parse_args(argv)
    if args.format == "transformers":
        if args.int8:
            raise ValueError("--int8 applies to --format onnx only; drop it for --format transformers.")
        from ..transformers_export import export_transformers

        out = export_transformers(args.model, args.out)
        print(f"wrote {out} (transformers' format)")
        return out
    path = export_onnx(args.model, args.out, int8=args.int8, opset=args.opset)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return path


def cli() -> None:
    """``w2v2-export`` (a console script must return None); an input error is one line, exit status 2."""
    from ..cli_errors import run_cli

    run_cli(main)


if __name__ == "__main__":
    cli()
