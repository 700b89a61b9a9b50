"""Transcription with any CTC checkpoint: ``Transcriber`` and the ``w2v2-transcribe`` script.

Long audio is read and recognised in overlapping windows, so memory does not grow with the
length of a file. Windows of ``chunk_length_s`` start every ``chunk_length_s - 2 *
stride_length_s`` seconds; of each window's frames only the middle is kept (the first window
also keeps its start, the last its end), so every frame is decided with at least
``stride_length_s`` of context on both sides and the kept frames tile the file exactly:

    window k:  [k*S, k*S + W)          keep [k*S + C, k*S + W - C)     (W window, C context, S = W - 2C)

C is at least the encoder's receptive field (25 ms for the paper's; a smaller stride_length_s,
0 included, is raised to it): with less, the frame straddling a window's edge is lost, and the
last window could be too short to give a frame at all. A file shorter than the receptive field
has no frame: its transcript is empty, with a warning that names it.

Audio that soundfile reads (WAV, FLAC, OGG, MP3) is streamed block by block and resampled on
the fly (``soxr.ResampleStream``); other formats are decoded whole with torchcodec. Greedy
decoding keeps one id per 20 ms frame; beam search with an n-gram LM (``--lm``, pyctcdecode +
kenlm) keeps the frame log-probabilities of one file (vocab floats per frame).

    w2v2-transcribe --model_name_or_path runs/base-10min --inputs talk.flac recordings/ \\
        --word_timestamps --output_format json --output_file out.json
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..cli_errors import parse_cli_args
from ..modeling import W2V2ForCTC
from ..processing import W2V2Processor, receptive_field
from ..processing.audio import audio_seconds, list_audio_files, stream_audio
from ..processing.lm_decoder import NgramCTCDecoder
from ..training.speed import choose_mixed_precision, compile_model, default_transcription_batch_size

__all__ = ["TranscribeArguments", "Transcriber", "build_lm_decoder", "has_language_model", "list_audio_files", "main"]

BLOCK_SECONDS = 1.0  # read granularity when streaming a file

logger = logging.getLogger(__name__)


@dataclass
class TranscribeArguments:
    """``w2v2-transcribe`` arguments."""

    model_name_or_path: str = field(metadata={"help": "CTC checkpoint, w2v2 or transformers format (folder or Hub id)."})
    inputs: list[str] = field(metadata={"help": "Audio files and/or folders (searched recursively)."})
    output_format: str = field(default="text", metadata={"help": "'text' or 'json'.", "choices": ["text", "json"]})
    output_file: str | None = field(default=None, metadata={"help": "Write here instead of standard output."})
    word_timestamps: bool = field(default=False, metadata={"help": "Add each word's start and end (seconds)."})
    chunk_length_s: float = field(default=20.0, metadata={"help": "Window length in seconds."})
    stride_length_s: float = field(
        default=2.5, metadata={"help": "Context on each side of a window's kept middle (at least the receptive field, 25 ms)."}
    )
    batch_size: int | None = field(default=None, metadata={"help": "Windows per forward pass; default: 1 on a CPU, 8 on a GPU."})
    mixed_precision: str = field(
        default="auto", metadata={"help": "auto (bf16 where this device runs the model faster, measured) | no | bf16 | fp16."})
    int8: bool = field(default=False, metadata={"help": "CPU: dynamic int8 quantization of the Linear layers."})
    torch_compile: bool = field(default=False, metadata={"help": "torch.compile the encoder (a minute or more to compile)."})
    device: str | None = field(default=None, metadata={"help": "'cpu', 'cuda', ...; default: cuda when available."})
    lm: str | None = field(default=None, metadata={"help": "n-gram LM (ARPA, kenlm binary or w2v2-build-lm folder) for beam search; "
                                                        "default: the model folder's language_model/, if any."})
    no_lm: bool = field(default=False, metadata={"help": "Greedy decoding even when the model folder has a language_model/."})
    beam_width: int = field(default=32, metadata={"help": "Beams kept in LM beam search."})
    lm_alpha: float | None = field(default=None, metadata={"help": "LM weight; default: the LM's attrs.json (tuned), else 0.5."})
    lm_beta: float | None = field(default=None, metadata={"help": "Word insertion bonus; default: the LM's attrs.json, else 1.0."})
    progress: bool = field(default=True, metadata={"help": "Progress bar (seconds of audio) on standard error."})
    backend: str = field(default="torch", metadata={"help": "torch, or onnx: model_name_or_path is then a w2v2-export folder "
                                                            "run with onnxruntime on the CPU.", "choices": ["torch", "onnx"]})


@dataclass
class _Window:
    file: int  # index into the files being transcribed
    samples: np.ndarray  # (window_samples,) float32
    keep: tuple[int, int | None]  # kept frames, relative to the window start


class Transcriber:
    """Chunked CTC inference: greedy or LM beam search, with optional word timestamps.

    Args:
        model: a ``W2V2ForCTC`` (or transformers ``Wav2Vec2ForCTC``).
        processor: its ``W2V2Processor``.
        chunk_length_s, stride_length_s: window and per-side context (module docstring).
        batch_size: windows per forward pass; None: what suits the model's device (1 on a CPU, 8 on a GPU).
        lm_decoder: a pyctcdecode decoder (:func:`build_lm_decoder`), or None for greedy.
        mixed_precision: "no", "bf16", "fp16", or "auto": bf16 autocast where this device runs
            the model faster (measured once on a window; see ``w2v2.training.speed``).
        int8: quantize the Linear layers to int8 (dynamic quantization, CPU only); the
            convolutions stay in floating point.
        torch_compile: compile the encoder (``torch.compile``, dynamic shapes).
    """

    def __init__(self, model, processor, *, chunk_length_s=20.0, stride_length_s=2.5, batch_size=None, lm_decoder=None,
                 mixed_precision="no", int8=False, torch_compile=False):
        device = model.device
        if int8:
            if device.type != "cpu":
                raise ValueError(f"int8=True runs on the CPU only, and the model is on {device}; use mixed_precision='bf16' there.")
            model = torch.ao.quantization.quantize_dynamic(model.eval(), {torch.nn.Linear}, dtype=torch.qint8)
        self.model = model.eval()
        self.processor = processor
        self.rate = processor.feature_extractor.sampling_rate
        ratio = model.config.inputs_to_logits_ratio  # samples per frame, 320
        self.ratio = ratio
        self.window = round(chunk_length_s * self.rate / ratio) * ratio
        # whole frames, and at least the receptive field (module docstring)
        self.receptive_field = receptive_field(model.config.conv_kernel, model.config.conv_stride)
        self.context = max(round(stride_length_s * self.rate / ratio), math.ceil(self.receptive_field / ratio)) * ratio
        batch_size = default_transcription_batch_size(device) if batch_size is None else batch_size
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1.")
        if self.window - 2 * self.context < ratio:
            raise ValueError(
                f"chunk_length_s={chunk_length_s} leaves nothing between two contexts of stride_length_s="
                f"{stride_length_s}; use chunk_length_s > 2 * stride_length_s (e.g. 20 and 2.5)."
            )
        self.batch_size = batch_size
        self.lm_decoder = lm_decoder
        # the probe runs 5 s of audio (a few seconds at most), not a whole window
        self.mixed_precision = choose_mixed_precision(mixed_precision, device, None if int8 else model, samples=min(self.window, 80_000))
        if int8 and self.mixed_precision != "no":
            self.mixed_precision = "no"  # quantized Linear layers do not run under autocast
        if torch_compile:
            compile_model(self.model)

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str | None = None, backend: str = "torch", **kwargs) -> Transcriber:
        """Load model and processor from one folder or Hub id (w2v2 or transformers format);
        ``backend="onnx"``: a ``w2v2-export --format onnx`` folder, run by onnxruntime on the CPU."""
        if backend == "onnx":
            from .export import OnnxTranscriberModel

            if kwargs.get("int8") or kwargs.get("torch_compile") or kwargs.get("mixed_precision", "no") not in ("no", "auto") or device not in (None, "cpu"):
                raise ValueError("backend='onnx' runs the exported graph as it is, in fp32 or int8, on the CPU; drop int8, "
                                 "torch_compile, mixed_precision and device (quantize with `w2v2-export --int8` instead).")  # fmt: skip
            return cls(OnnxTranscriberModel(name_or_path), W2V2Processor.from_pretrained(name_or_path), **{**kwargs, "mixed_precision": "no"})
        if backend != "torch":
            raise ValueError(f"backend={backend!r} is not supported; use 'torch' or 'onnx'.")
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = W2V2ForCTC.from_pretrained(name_or_path).to(device)
        return cls(model, W2V2Processor.from_pretrained(name_or_path), **kwargs)

    # ---- reading -------------------------------------------------------------------------

    def _windows(self, index: int, path: Path) -> Iterator[_Window]:
        """Windows of one file, read as they are needed (the buffer never exceeds a window + a block)."""
        step = self.window - 2 * self.context
        keep_hi = (self.window - self.context) // self.ratio
        buffer, first = np.zeros(0, dtype=np.float32), True  # buffer starts at the next window's start
        for block in stream_audio(path, self.rate, block_seconds=BLOCK_SECONDS):
            buffer = np.concatenate([buffer, block])
            while len(buffer) > self.window:  # audio follows this window: it is not the last
                lo = 0 if first else self.context // self.ratio
                yield _Window(index, buffer[: self.window].copy(), (lo, keep_hi))
                buffer, first = buffer[step:], False
        if first and 0 < len(buffer) < self.receptive_field:
            logger.warning(
                "%s has %d samples, fewer than the encoder's receptive field of %d (%g ms): no frame, empty transcript.",
                path, len(buffer), self.receptive_field, 1000 * self.receptive_field / self.rate,
            )  # fmt: skip
        elif len(buffer):
            yield _Window(index, buffer, (0 if first else self.context // self.ratio, None))  # the last

    # ---- recognising ---------------------------------------------------------------------

    @torch.no_grad()
    def _forward(self, windows: list[_Window]) -> list[np.ndarray]:
        """Per window, its kept frames: greedy ids (frames,) or log-probs (frames, vocab)."""
        lengths = [len(w.samples) for w in windows]
        features = self.processor.feature_extractor([w.samples for w in windows], sampling_rate=self.rate, return_tensors="pt")
        features = {k: v.to(self.model.device) for k, v in features.items()}
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.mixed_precision)
        with torch.autocast(self.model.device.type, dtype=dtype, enabled=dtype is not None):
            logits = self.model(**features).logits.float()  # (B, T, V)
        if self.lm_decoder is None:
            frames = logits.argmax(-1).cpu().numpy()  # (B, T)
        else:
            frames = torch.log_softmax(logits, -1).cpu().numpy()  # (B, T, V)
        valid = self.model._get_feat_extract_output_lengths(torch.tensor(lengths)).tolist()  # frames before padding
        return [f[:n][w.keep[0] : w.keep[1]] for w, f, n in zip(windows, frames, valid)]

    def transcribe(self, paths: list[str | Path], *, word_timestamps: bool = False, progress: bool = False) -> Iterator[dict]:
        """Yield ``{"path", "text", "duration"[, "words"]}`` per file, in order, as soon as it is done.

        A file that cannot be read (undecodable, missing, NaN samples) yields ``{"path", "error",
        "duration"}`` instead, with a warning, and the others go on.

        ``words`` are ``{"word", "start", "end"}`` in seconds from the start of the file.
        Windows of several files share a batch; without an attention mask (group-norm models,
        whose outputs change with padding) only windows of equal length do.
        """
        paths = [Path(p) for p in paths]
        durations = [audio_seconds(p) for p in paths]
        can_pad = bool(self.processor.feature_extractor.return_attention_mask)
        parts: dict[int, list[np.ndarray]] = defaultdict(list)
        pending: dict[int, int] = defaultdict(int)  # windows read but not yet run, per file
        bar = tqdm(total=round(sum(durations), 1), unit="s", disable=not progress, file=sys.stderr, desc="audio")
        batch: list[_Window] = []
        read, done = 0, 0  # files read completely; files yielded

        def run() -> None:
            for window, frames in zip(batch, self._forward(batch)):
                parts[window.file].append(frames)
                pending[window.file] -= 1
                bar.update(round(len(frames) * self.ratio / self.rate, 2))
            batch.clear()

        failed: dict[int, str] = {}
        for index, path in enumerate(paths):
            try:
                for window in self._windows(index, path):
                    if batch and not can_pad and len(window.samples) != len(batch[0].samples):
                        run()
                    batch.append(window)
                    pending[index] += 1
                    if len(batch) == self.batch_size:
                        run()
            except (RuntimeError, OSError) as error:  # undecodable, missing, NaN: skip this file, keep the rest
                batch[:] = [w for w in batch if w.file != index]
                pending[index], failed[index] = 0, str(error)
                parts.pop(index, None)
                logger.warning("skipping %s: %s", path, error)
            read = index + 1
            if index == len(paths) - 1 and batch:
                run()
            while done < read and pending[done] == 0:
                if done in failed:
                    yield {"path": str(paths[done]), "error": failed.pop(done), "duration": round(durations[done], 3)}
                else:
                    yield self._result(paths[done], durations[done], parts.pop(done, []), word_timestamps)
                done += 1
        bar.update(max(0.0, bar.total - bar.n))  # kept frames stop short of the last receptive field
        bar.close()

    def _result(self, path: Path, duration: float, parts: list[np.ndarray], word_timestamps: bool) -> dict:
        seconds_per_frame = self.ratio / self.rate
        if self.lm_decoder is not None:
            log_probs = np.concatenate(parts) if parts else np.zeros((0, len(self.processor.tokenizer)), np.float32)
            text, words = self.lm_decoder(log_probs)
        else:
            ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            decoded = self.processor.tokenizer.decode(ids, output_word_offsets=True)
            text = decoded.text
            words = [(w["word"], w["start_offset"], w["end_offset"]) for w in decoded.word_offsets]
        result = {"path": str(path), "text": text, "duration": round(duration, 3)}
        if word_timestamps:
            result["words"] = [
                {"word": w, "start": round(s * seconds_per_frame, 3), "end": round(e * seconds_per_frame, 3)}
                for w, s, e in words
            ]
        return result


def build_lm_decoder(tokenizer, lm_path: str, *, alpha: float | None = None, beta: float | None = None, beam_width: int = 32):
    """Beam search with an n-gram LM: ``log_probs (T, V) -> (text, [(word, start, end)])``
    (:class:`w2v2.training.language_model.NgramCTCDecoder`; alpha/beta None: the LM folder's own)."""
    return NgramCTCDecoder(tokenizer, lm_path, alpha=alpha, beta=beta, beam_width=beam_width)


def has_language_model(name_or_path: str) -> bool:
    """Whether a model folder (or Hub repo) carries an LM as ``language_model/`` (``W2V2ProcessorWithLM``)."""
    if Path(name_or_path).is_dir():
        return (Path(name_or_path) / "language_model").is_dir()
    try:
        from huggingface_hub import file_exists

        return file_exists(name_or_path, "language_model/attrs.json")
    except Exception:  # noqa: BLE001  (offline, no such repo: no LM to use)
        return False


def main(argv: list[str] | None = None) -> list[dict]:
    """Text (one line per file, ``path<TAB>text`` for several) or JSON; returns the results."""
    (args,) = parse_cli_args([TranscribeArguments], argv)
    files = list_audio_files(args.inputs)
    transcriber = Transcriber.from_pretrained(
        args.model_name_or_path, device=args.device, chunk_length_s=args.chunk_length_s,
        stride_length_s=args.stride_length_s, batch_size=args.batch_size, mixed_precision=args.mixed_precision,
        int8=args.int8, torch_compile=args.torch_compile, backend=args.backend,
    )  # fmt: skip
    if args.lm and args.no_lm:
        raise ValueError("--lm and --no_lm contradict each other; pass one of them.")
    if args.lm:
        transcriber.lm_decoder = build_lm_decoder(transcriber.processor.tokenizer, args.lm, alpha=args.lm_alpha,
                                                  beta=args.lm_beta, beam_width=args.beam_width)  # fmt: skip
    elif not args.no_lm and has_language_model(args.model_name_or_path):
        from ..processing import W2V2ProcessorWithLM

        decoder = W2V2ProcessorWithLM.from_pretrained(args.model_name_or_path).decoder
        decoder.set_weights(decoder.alpha if args.lm_alpha is None else args.lm_alpha, decoder.beta if args.lm_beta is None else args.lm_beta)
        decoder.beam_width = args.beam_width
        transcriber.lm_decoder = decoder
    out = open(args.output_file, "w") if args.output_file else sys.stdout
    results = []
    try:
        for result in transcriber.transcribe(files, word_timestamps=args.word_timestamps, progress=args.progress):
            results.append(result)
            if "error" in result:
                print(f"error: {result['error']}", file=sys.stderr)
                continue
            if args.output_format == "text":
                out.write(result["text"] + "\n" if len(files) == 1 else f"{result['path']}\t{result['text']}\n")
                for word in result.get("words", []):
                    out.write(f"{word['start']:.2f}\t{word['end']:.2f}\t{word['word']}\n")
                out.flush()
        if args.output_format == "json":
            json.dump(results, out, indent=1)
            out.write("\n")
    finally:
        if out is not sys.stdout:
            out.close()
    failures = [r["path"] for r in results if "error" in r]
    if failures:
        print(f"{len(failures)} of {len(results)} files could not be transcribed (the others were): {', '.join(failures)}", file=sys.stderr)
    return results


def cli() -> None:
    """``w2v2-transcribe`` (a console script must return None: ``sys.exit`` prints anything else and exits 1).

    Exit status 1 when some file could not be transcribed (after writing every other one), 2 on
    an error in the input (one line, cli_errors).
    """
    from w2v2.cli_errors import run_cli

    if any("error" in r for r in run_cli(main)):
        sys.exit(1)


if __name__ == "__main__":
    cli()
