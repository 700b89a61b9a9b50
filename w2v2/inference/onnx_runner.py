"""Run a ``w2v2-export --format onnx`` folder with onnxruntime alone: no torch, no transformers.

This file imports only the standard library, numpy and onnxruntime, and nothing of w2v2
(``import w2v2.inference.onnx_runner`` does import the w2v2 package, which imports torch). On a machine
without torch, copy this one file next to your code, or load it by path::

    import importlib.util
    spec = importlib.util.spec_from_file_location("onnx_runner", "w2v2/inference/onnx_runner.py")
    runner = importlib.util.module_from_spec(spec); spec.loader.exec_module(runner)
    model = runner.OnnxCTCModel("exported/")
    texts = model.transcribe([audio_16k])  # list of float32 (samples,) arrays

The export folder holds ``model.onnx`` (``input_values`` (batch, samples) float32 [+
``attention_mask`` (batch, samples)] -> ``logits`` (batch, frames, vocab)), the processor's
files and ``export_info.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["MODEL_FILE", "INFO_FILE", "OnnxCTCModel"]

MODEL_FILE = "model.onnx"
INFO_FILE = "export_info.json"  # how the folder was made; also marks it as the exporter's
NORM_EPS = 1e-7  # w2v2.processing.audio.NORM_EPS, restated: this file imports nothing of w2v2 (tests check they agree)


class OnnxCTCModel:
    """An exported CTC model on onnxruntime's CPU provider.

    Args:
        folder: what ``w2v2-export --format onnx`` wrote.
        num_threads: onnxruntime's intra-op threads; None: its default (all cores).
    """

    def __init__(self, folder: str | Path, *, num_threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError as error:
            raise ValueError("onnxruntime is not installed; pip install onnxruntime (or w2v2[onnx]).") from error
        folder = Path(folder)
        if not (folder / MODEL_FILE).is_file():
            raise ValueError(f"folder={str(folder)!r} has no {MODEL_FILE}; write one with `w2v2-export --format onnx MODEL {folder}`.")
        self.folder = folder
        self.info = json.loads((folder / INFO_FILE).read_text()) if (folder / INFO_FILE).is_file() else {}
        self.preprocessor = _feature_extractor_config(folder)
        options = ort.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = num_threads
        self.session = ort.InferenceSession(str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"])
        self.input_types = {i.name: i.type for i in self.session.get_inputs()}  # e.g. "tensor(int64)"
        self.takes_attention_mask = "attention_mask" in self.input_types

    def __call__(self, input_values: np.ndarray, attention_mask: np.ndarray | None = None) -> np.ndarray:
        """input_values (batch, samples), already normalised (:meth:`prepare`) -> logits (batch, frames, vocab) float32."""
        input_values = np.asarray(input_values, dtype=np.float32)
        if input_values.ndim != 2:
            raise ValueError(f"input_values has shape {input_values.shape}; pass a (batch, samples) array.")
        feeds = {"input_values": input_values}
        if self.takes_attention_mask:
            mask = np.ones(input_values.shape, np.int64) if attention_mask is None else attention_mask
            feeds["attention_mask"] = np.asarray(mask, dtype=np.int32 if "int32" in self.input_types["attention_mask"] else np.int64)
        elif attention_mask is not None and not np.all(attention_mask):
            raise ValueError(
                "attention_mask has padding, but this model takes none (a group-norm encoder, whose outputs change "
                "with padding); run utterances of different lengths one at a time."
            )
        return self.session.run(["logits"], feeds)[0]

    def prepare(self, waveforms: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Float32 waveforms at the model's rate -> (input_values, attention_mask), both (batch, longest):
        zero-padded, each normalised like the feature extractor, ``(x - mean) / sqrt(var + NORM_EPS)``."""
        longest = max(len(w) for w in waveforms)
        values = np.full((len(waveforms), longest), self.preprocessor.get("padding_value", 0.0), np.float32)
        mask = np.zeros((len(waveforms), longest), np.int64)
        for row, wave in enumerate(waveforms):
            wave = np.asarray(wave, dtype=np.float32)
            if self.preprocessor.get("do_normalize", True):
                wave = (wave - wave.mean()) / np.sqrt(wave.var() + NORM_EPS)
            values[row, : len(wave)], mask[row, : len(wave)] = wave, 1
        return values, mask

    def transcribe(self, waveforms: list[np.ndarray]) -> list[str]:
        """Greedy CTC transcripts of 16 kHz float32 waveforms (one batch)."""
        values, mask = self.prepare(waveforms)
        if not self.takes_attention_mask and len({len(w) for w in waveforms}) > 1:
            return [self.transcribe([w])[0] for w in waveforms]
        ids = self(values, mask).argmax(-1)  # (B, T)
        frames = [self.frames(len(w)) for w in waveforms]
        return [self.decode(row[:n]) for row, n in zip(ids, frames)]

    def frames(self, samples: int) -> int:
        """Frames the conv feature encoder makes of ``samples`` samples (before padding)."""
        for kernel, stride in zip(self.info["conv_kernel"], self.info["conv_stride"]):
            samples = (samples - kernel) // stride + 1
        return max(samples, 0)

    def decode(self, ids: np.ndarray) -> str:
        """Greedy CTC: merge repeats, drop the blank, the word delimiter becomes a space."""
        tokenizer = self.info["tokenizer"]
        vocab = {i: token for token, i in json.loads((self.folder / "vocab.json").read_text()).items()}
        kept = [int(i) for j, i in enumerate(ids) if (j == 0 or i != ids[j - 1]) and i != tokenizer["pad_token_id"]]
        text = "".join(vocab.get(i, tokenizer["unk_token"]) for i in kept)
        return " ".join(text.replace(tokenizer["word_delimiter_token"], " ").split())


def _feature_extractor_config(folder: Path) -> dict:
    """The feature extractor's settings: preprocessor_config.json, or inside processor_config.json (transformers 5)."""
    if (folder / "preprocessor_config.json").is_file():
        return json.loads((folder / "preprocessor_config.json").read_text())
    if (folder / "processor_config.json").is_file():
        return json.loads((folder / "processor_config.json").read_text()).get("feature_extractor", {})
    raise ValueError(f"folder={str(folder)!r} has no preprocessor_config.json or processor_config.json; export it again with w2v2-export.")
