"""One object for both sides of CTC: audio -> ``input_values``, text <-> ``labels``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature, ProcessorMixin

from .feature_extraction import W2V2FeatureExtractor
from .tokenization import W2V2CTCTokenizer, W2V2CTCTokenizerOutput, offsets_to_seconds

__all__ = ["W2V2Processor", "LABEL_PAD_ID"]

LABEL_PAD_ID = -100  # ignored by the CTC loss (transformers' convention for labels)


class W2V2Processor(ProcessorMixin):
    """A ``W2V2FeatureExtractor`` and a ``W2V2CTCTokenizer`` saved and loaded together.

    ``save_pretrained`` writes ``processor_config.json`` (with the feature extractor
    inside), ``vocab.json`` and ``tokenizer_config.json``; ``AutoProcessor`` loads it back
    after ``import w2v2``. ``W2V2Processor.from_pretrained`` also reads directories saved
    by transformers' ``Wav2Vec2Processor``, converting both parts to the w2v2 classes.
    """

    def __init__(self, feature_extractor: W2V2FeatureExtractor, tokenizer: W2V2CTCTokenizer):
        super().__init__(feature_extractor, tokenizer)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> "W2V2Processor":
        """Build our own classes whatever the saved "*_type"/"tokenizer_class" names say, so that
        transformers' Wav2Vec2Processor directories load as W2V2Processor. (transformers 5.25
        stopped reading sub-processors through ``_get_arguments_from_pretrained``, which this
        replaces.)"""
        kwargs.pop("trust_remote_code", None)  # AutoProcessor passes it; the parts do not take it
        folder = Path(str(pretrained_model_name_or_path))
        if folder.is_dir() and not (folder / "vocab.json").is_file():
            raise ValueError(f"{folder} holds no vocab.json, the CTC tokenizer's vocabulary; pass the folder of a "
                             "fine-tuned model (or of the processor saved with it), or build one with W2V2CTCTokenizer.from_texts.")  # fmt: skip
        return cls(
            W2V2FeatureExtractor.from_pretrained(pretrained_model_name_or_path, **kwargs),
            W2V2CTCTokenizer.from_pretrained(pretrained_model_name_or_path, **kwargs),
        )

    def __call__(
        self,
        audio: Any = None,
        text: str | list[str] | None = None,
        sampling_rate: int | None = None,
        padding: bool | str = "longest",
        return_tensors: str | None = None,
        **audio_kwargs: Any,
    ) -> BatchFeature:
        """Features of ``audio`` and/or labels of ``text``.

        Args:
            audio: Anything ``W2V2FeatureExtractor`` takes (one utterance or a batch).
            text: Transcript(s), one per utterance.
            sampling_rate: Rate of raw audio arrays, in Hz.
            padding: Padding of both audio and labels.
            return_tensors: ``"pt"``, ``"np"`` or None.
            audio_kwargs: More ``W2V2FeatureExtractor.__call__`` arguments (``resample``,
                ``mono``, ``return_attention_mask``, ...).

        Returns:
            With audio: ``input_values`` (batch, samples) [+ ``attention_mask``] and, with
            text, ``labels`` (batch, max_label_len) padded with -100. Text alone: the
            tokenizer's ``input_ids``/``attention_mask``.
        """
        if audio is None and text is None:
            raise ValueError("W2V2Processor needs audio=..., text=... or both; got neither.")
        if text is not None and audio is None:
            return self.tokenizer(text, padding=padding, return_tensors=return_tensors)
        features = self.feature_extractor(
            audio, sampling_rate=sampling_rate, padding=padding, return_tensors=return_tensors, **audio_kwargs
        )
        if text is not None:
            texts = [text] if isinstance(text, str) else list(text)
            if len(texts) != len(features["input_values"]):
                raise ValueError(
                    f"got {len(features['input_values'])} utterances but {len(texts)} transcripts; pass one "
                    "transcript per utterance."
                )
            encoded = self.tokenizer(texts)
            features["labels"] = self._pad_labels(encoded["input_ids"], return_tensors)
        return features

    def pad(
        self,
        input_features: list[dict[str, Any]] | None = None,
        labels: list[Any] | None = None,
        return_tensors: str | None = "pt",
        **kwargs: Any,
    ) -> BatchFeature:
        """Pad already-processed examples into a batch: the core of a CTC data collator.

        Args:
            input_features: ``[{"input_values": ...}, ...]`` from the feature extractor.
            labels: Label id sequences, as lists/arrays or ``{"input_ids": ...}`` dicts.
            return_tensors: ``"pt"`` (default), ``"np"`` or None.
            kwargs: ``W2V2FeatureExtractor.pad`` arguments (``padding``,
                ``pad_to_multiple_of``, ``return_attention_mask``, ...).

        Returns:
            ``input_values`` (batch, samples) [+ ``attention_mask``] and ``labels``
            (batch, max_label_len) with -100 after each sequence.
        """
        if input_features is None and labels is None:
            raise ValueError("W2V2Processor.pad needs input_features=..., labels=... or both; got neither.")
        batch = BatchFeature({}, tensor_type=return_tensors)
        if input_features is not None:
            batch = self.feature_extractor.pad(input_features, return_tensors=return_tensors, **kwargs)
        if labels is not None:
            sequences = [item["input_ids"] if isinstance(item, dict) else item for item in labels]
            batch["labels"] = self._pad_labels(sequences, return_tensors)
        return batch

    @staticmethod
    def _pad_labels(sequences: list[Any], return_tensors: str | None) -> Any:
        """(batch, max_len) ids with ``LABEL_PAD_ID`` after each sequence."""
        sequences = [np.asarray(s, dtype=np.int64).reshape(-1) for s in sequences]
        width = max((len(s) for s in sequences), default=0)
        padded = np.full((len(sequences), width), LABEL_PAD_ID, dtype=np.int64)
        for row, s in zip(padded, sequences):
            row[: len(s)] = s
        if return_tensors == "pt":
            return torch.from_numpy(padded)
        if return_tensors == "np":
            return padded
        return padded.tolist()

    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str] | W2V2CTCTokenizerOutput:
        """``W2V2CTCTokenizer.batch_decode``."""
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args: Any, **kwargs: Any) -> str | W2V2CTCTokenizerOutput:
        """``W2V2CTCTokenizer.decode``."""
        return self.tokenizer.decode(*args, **kwargs)

    def offsets_to_seconds(self, offsets: list[dict[str, Any]], inputs_to_logits_ratio: int) -> list[dict[str, Any]]:
        """Frame offsets from ``decode(..., output_word_offsets=True)`` with times in seconds.

        ``inputs_to_logits_ratio`` is ``model.config.inputs_to_logits_ratio`` (320 for the
        paper's conv strides).
        """
        return offsets_to_seconds(offsets, inputs_to_logits_ratio, self.feature_extractor.sampling_rate)

    @property
    def model_input_names(self) -> list[str]:
        return list(self.feature_extractor.model_input_names) + ["labels"]
