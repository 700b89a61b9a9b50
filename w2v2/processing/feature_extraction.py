"""Raw audio -> ``input_values``: the only preprocessing wav2vec 2.0 does.

The encoder ``f: X -> Z`` reads the waveform itself, so feature extraction is checking,
converting to float32 mono at 16 kHz, optional per-utterance normalisation and padding.
Normalisation is a recipe choice: the paper's BASE model trains on raw audio
(fairseq ``normalize: false``), LARGE on zero-mean unit-variance audio.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature, SequenceFeatureExtractor
from transformers.processing_utils import AudioKwargs
from transformers.utils import PaddingStrategy, logging

from .audio import MONO_POLICIES, SAMPLE_RATE, normalize, to_mono
from .audio import resample as resample_audio  # "resample" is the flag of __call__

__all__ = ["W2V2FeatureExtractor", "W2V2AudioKwargs", "receptive_field"]

logger = logging.get_logger(__name__)

# conv_kernel (10, 3, 3, 3, 3, 2, 2), conv_stride (5, 2, 2, 2, 2, 2, 2) -> 400 samples (25 ms)
PAPER_RECEPTIVE_FIELD = 400
# Full scale of signed PCM: int16 in [-32768, 32767] / 32768 lies in [-1, 1).
_PCM_SCALE = {np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31}


class W2V2AudioKwargs(AudioKwargs, total=False):
    """Arguments of ``W2V2FeatureExtractor.__call__`` beyond transformers' ``AudioKwargs``;
    declared so that ``W2V2Processor`` routes them to the feature extractor."""

    resample: bool
    mono: str | None


def receptive_field(conv_kernel: Sequence[int], conv_stride: Sequence[int]) -> int:
    """Samples that one output frame of the conv stack sees.

    ``r = 1 + sum_i (k_i - 1) * prod_{j<i} s_j``; 400 for the paper's encoder.
    """
    if len(conv_kernel) != len(conv_stride) or not conv_kernel:
        raise ValueError(
            f"conv_kernel {tuple(conv_kernel)} and conv_stride {tuple(conv_stride)} must be non-empty and "
            "of the same length (one entry per conv layer)."
        )
    field, jump = 1, 1
    for kernel, stride in zip(conv_kernel, conv_stride):
        field += (kernel - 1) * jump
        jump *= stride
    return field


class W2V2FeatureExtractor(SequenceFeatureExtractor):
    """Turns waveforms into padded ``input_values`` (and ``attention_mask``).

    Behaves like transformers' ``Wav2Vec2FeatureExtractor`` (same attributes, same
    normalisation) and adds input checks, PCM/decoder inputs and resampling.

    Args:
        feature_size: Values per time step; 1 for raw audio.
        sampling_rate: Rate the model was trained at, in Hz.
        padding_value: Value written into padded samples.
        return_attention_mask: Default for ``__call__``. Layer-norm models
            (``feat_extract_norm="layer"``) need the mask in padded batches. Group-norm
            models (the BASE recipe) were trained without one: their first conv layer
            normalises over the whole, padded, sequence, so a mask cannot make padding
            invisible; pass them unpadded or length-sorted batches instead.
        do_normalize: Per-utterance zero mean, unit variance over the unpadded samples,
            ``(x - mean) / sqrt(var + 1e-7)`` (``w2v2.processing.audio.normalize``).
        min_samples: Shortest accepted utterance; the encoder's receptive field, 400
            samples (25 ms at 16 kHz) for the paper's conv stack.
            ``W2V2FeatureExtractor.from_model_config(config)`` computes it.
    """

    model_input_names = ["input_values", "attention_mask"]
    valid_kwargs = W2V2AudioKwargs

    def __init__(
        self,
        feature_size: int = 1,
        sampling_rate: int = SAMPLE_RATE,
        padding_value: float = 0.0,
        return_attention_mask: bool = False,
        do_normalize: bool = True,
        min_samples: int = PAPER_RECEPTIVE_FIELD,
        **kwargs: Any,
    ):
        if feature_size != 1:
            raise ValueError(f"feature_size={feature_size}: wav2vec 2.0 reads raw mono audio, use feature_size=1.")
        if min_samples < 1:
            raise ValueError(f"min_samples={min_samples} must be >= 1 (the encoder's receptive field in samples).")
        super().__init__(feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value, **kwargs)
        self.return_attention_mask = return_attention_mask
        self.do_normalize = do_normalize
        self.min_samples = min_samples

    @classmethod
    def from_model_config(cls, config: Any, **kwargs: Any) -> W2V2FeatureExtractor:
        """A feature extractor matched to a model config.

        ``min_samples`` comes from ``config.conv_kernel``/``config.conv_stride`` and
        ``return_attention_mask`` is True exactly for ``feat_extract_norm == "layer"``;
        ``kwargs`` override either.
        """
        kwargs.setdefault("min_samples", receptive_field(config.conv_kernel, config.conv_stride))
        kwargs.setdefault("return_attention_mask", config.feat_extract_norm == "layer")
        return cls(**kwargs)

    def __call__(
        self,
        raw_speech: Any,
        padding: bool | str | PaddingStrategy | None = None,
        max_length: int | None = None,
        truncation: bool = False,
        pad_to_multiple_of: int | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
        sampling_rate: int | None = None,
        resample: bool = False,
        mono: str | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Check, convert, normalise and pad one utterance or a batch.

        Args:
            raw_speech: One utterance or a list of them. An utterance is a 1-D float
                array/tensor/list, int16/int32 PCM (scaled to [-1, 1)), a dict with
                ``array`` and ``sampling_rate`` (datasets' ``Audio``), or a torchcodec
                ``AudioDecoder`` (what datasets 5.x yields). A 2-D array or tensor is a
                batch of equal-length utterances ``(batch, samples)``; inside a list, a
                dict or a decoder, 2-D means channels.
            padding: ``"longest"``/True, ``"max_length"`` or False/``"do_not_pad"``. None (the
                default): ``"longest"`` when ``return_tensors`` is set (a batch tensor needs
                it), else False, as transformers' default.
            max_length: Length for ``"max_length"`` padding and for truncation.
            truncation: Cut utterances longer than ``max_length``.
            pad_to_multiple_of: Round the padded length up to a multiple of this.
            return_attention_mask: Defaults to ``self.return_attention_mask``.
            return_tensors: ``"pt"``, ``"np"`` or None (list of arrays).
            sampling_rate: Rate of raw arrays, in Hz. Dicts and decoders carry their own, which
                must agree with it unless ``resample``.
            resample: Resample (soxr, high quality) instead of refusing another rate; dicts and
                decoders are then resampled from their own rate.
            mono: None refuses multi-channel audio; ``"mean"`` averages the channels.

        Returns:
            ``BatchFeature`` with ``input_values`` (batch, samples) float32 and, when
            asked, ``attention_mask`` (batch, samples) int32, 1 on real samples.
        """
        if kwargs:
            raise TypeError(f"W2V2FeatureExtractor got unexpected arguments {sorted(kwargs)}.")
        if mono not in MONO_POLICIES:
            raise ValueError(f"mono={mono!r} is not supported; use None (refuse multi-channel audio) or 'mean'.")
        if sampling_rate is not None and (isinstance(sampling_rate, bool) or not isinstance(sampling_rate, (int, np.integer))):
            raise ValueError(f"sampling_rate={sampling_rate!r} is a {type(sampling_rate).__name__}; pass the rate "
                             f"in Hz as an integer (sampling_rate={self.sampling_rate}).")  # fmt: skip
        if isinstance(raw_speech, (np.ndarray, torch.Tensor)) and raw_speech.ndim == 2:
            if raw_speech.shape[1] < self.min_samples:
                raise ValueError(
                    f"raw_speech of shape {tuple(raw_speech.shape)} is read as (batch, samples), which makes "
                    f"utterances of {raw_speech.shape[1]} samples. For one multi-channel recording pass [audio] "
                    "(a list) with mono='mean'."
                )
        batch = [
            self._prepare_one(item, index, sampling_rate, resample, mono)
            for index, item in enumerate(_split_batch(raw_speech))
        ]
        want_mask = self.return_attention_mask if return_attention_mask is None else return_attention_mask
        if padding is None:
            padding = "longest" if return_tensors is not None else False
        padded = self.pad(
            BatchFeature({"input_values": batch}),
            padding=padding,
            max_length=max_length,
            truncation=truncation,
            pad_to_multiple_of=pad_to_multiple_of,
            return_attention_mask=True,  # always, to know each utterance's length
        )
        values, masks = padded["input_values"], padded["attention_mask"]
        if self.do_normalize:
            values = [normalize(x, int(m.sum()), padding_value=self.padding_value) for x, m in zip(values, masks)]
        outputs = {"input_values": values}
        if want_mask:
            outputs["attention_mask"] = [m.astype(np.int32) for m in masks]
        return BatchFeature(outputs, tensor_type=return_tensors)

    def _prepare_one(
        self, item: Any, index: int, sampling_rate: int | None, resample: bool, mono: str | None
    ) -> np.ndarray:
        """One utterance -> checked float32 mono array at ``self.sampling_rate``, shape (samples,)."""
        audio, item_rate = _unpack(item, index)
        if item_rate is not None and sampling_rate is not None and item_rate != sampling_rate and not resample:
            # with resample=True the item's own rate is the truth and it is resampled
            raise ValueError(
                f"audio item {index} says it is sampled at {item_rate} Hz but sampling_rate={sampling_rate} was "
                "passed; drop the sampling_rate argument, fix the item, or pass resample=True to resample it to "
                f"{self.sampling_rate} Hz."
            )
        rate = item_rate if item_rate is not None else sampling_rate
        audio = _to_float(audio, index)
        audio = to_mono(audio, mono, f"audio item {index}")
        if audio.size == 0:
            raise ValueError(f"audio item {index} is empty (0 samples); drop it from the batch.")
        bad = ~np.isfinite(audio)
        if bad.any():
            raise ValueError(
                f"audio item {index} has {int(bad.sum())} NaN/inf samples (first at sample "
                f"{int(np.argmax(bad))}); the file or its decoding is broken, drop or repair it."
            )
        audio = self._check_rate(audio, index, rate, resample)
        if audio.shape[0] < self.min_samples:
            raise ValueError(
                f"audio item {index} has {audio.shape[0]} samples, fewer than the encoder's receptive field of "
                f"{self.min_samples} samples ({1000 * self.min_samples / self.sampling_rate:g} ms at "
                f"{self.sampling_rate} Hz); drop it or pad it with silence."
            )
        return audio

    def _check_rate(self, audio: np.ndarray, index: int, rate: int | None, resample: bool) -> np.ndarray:
        if rate is None:
            if self.sampling_rate != SAMPLE_RATE:
                raise ValueError(
                    f"audio item {index} has no sampling rate and this feature extractor expects "
                    f"{self.sampling_rate} Hz; pass sampling_rate=<rate of your audio> (and resample=True if it "
                    "differs)."
                )
            logger.warning_once(
                "W2V2FeatureExtractor was called without sampling_rate; assuming the audio is at "
                f"{self.sampling_rate} Hz. Pass sampling_rate to have it checked."
            )
            return audio
        if rate == self.sampling_rate:
            return audio
        if not resample:
            raise ValueError(
                f"audio item {index} is sampled at {rate} Hz but the model expects {self.sampling_rate} Hz; pass "
                "resample=True to resample it (soxr), or resample it beforehand (e.g. datasets' "
                f"`cast_column('audio', Audio(sampling_rate={self.sampling_rate}))`)."
            )
        return resample_audio(audio, rate, self.sampling_rate)


def _split_batch(raw_speech: Any) -> list[Any]:
    """The utterances of ``raw_speech``: a single utterance becomes a batch of one."""
    if isinstance(raw_speech, (np.ndarray, torch.Tensor)) and raw_speech.ndim == 2:
        return list(raw_speech)  # (batch, samples), as in transformers
    if isinstance(raw_speech, (np.ndarray, torch.Tensor)) and raw_speech.ndim > 2:
        raise ValueError(
            f"raw_speech has shape {tuple(raw_speech.shape)}; expected (samples,) or (batch, samples). For "
            "multi-channel audio pass a list of (channels, samples) arrays with mono='mean'."
        )
    if isinstance(raw_speech, (list, tuple)):
        if len(raw_speech) == 0:
            raise ValueError("raw_speech is an empty list; pass at least one utterance.")
        if isinstance(raw_speech[0], (int, float, np.number)):
            return [np.asarray(raw_speech)]  # a list of samples is one utterance
        return list(raw_speech)
    return [raw_speech]


def _unpack(item: Any, index: int) -> tuple[Any, int | None]:
    """(samples, sampling rate or None) of a raw array, a datasets dict or a torchcodec decoder."""
    if hasattr(item, "get_all_samples"):  # torchcodec AudioDecoder, as yielded by datasets 5.x
        samples = item.get_all_samples()
        return samples.data, int(samples.sample_rate)  # data: (channels, samples)
    if isinstance(item, Mapping):
        if "array" not in item or "sampling_rate" not in item:
            raise ValueError(
                f"audio item {index} is a dict with keys {sorted(item)}; it needs 'array' and 'sampling_rate' "
                "(the format of a datasets Audio column)."
            )
        return item["array"], int(item["sampling_rate"])
    return item, None


def _to_float(audio: Any, index: int) -> np.ndarray:
    """float32 samples; int16/int32 PCM scaled to [-1, 1)."""
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    elif isinstance(audio, (list, tuple)):
        audio = np.asarray(audio)
    if not isinstance(audio, np.ndarray):
        raise TypeError(
            f"audio item {index} is a {type(audio).__name__}; pass a numpy array, a torch tensor, a list of "
            "samples, a dict with 'array' and 'sampling_rate', or a torchcodec AudioDecoder (decode files first, "
            "e.g. with soundfile.read)."
        )
    if audio.dtype in _PCM_SCALE:
        return (audio / _PCM_SCALE[audio.dtype]).astype(np.float32)
    if np.issubdtype(audio.dtype, np.floating):
        return audio.astype(np.float32, copy=False)
    raise ValueError(
        f"audio item {index} has dtype {audio.dtype}; pass float samples in [-1, 1] or int16/int32 PCM "
        "(e.g. audio.astype(np.float32) / full_scale)."
    )
