"""One object for both sides of CTC: audio -> ``input_values``, text <-> ``labels``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from transformers import BatchEncoding, BatchFeature, ProcessorMixin

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
        self, audio: Any = None, text: str | list[str] | None = None, *, label_pad_id: int | None = None, **kwargs: Any
    ) -> BatchFeature | BatchEncoding:
        """Features of ``audio`` and/or ids of ``text``, as transformers' ``Wav2Vec2Processor``.

        Args:
            audio: Anything ``W2V2FeatureExtractor`` takes (one utterance or a batch).
            text: Transcript(s), one per utterance.
            label_pad_id: w2v2's addition. None (default): transformers' output. An id (CTC
                fine-tuning: ``LABEL_PAD_ID``, -100): ``labels`` (batch, max_label_len) padded
                to the longest transcript with this id, ready for the CTC loss.
            kwargs: Routed as in transformers 5: per modality (``audio_kwargs={...}``,
                ``text_kwargs={...}``), or flat (``sampling_rate``, ``padding``, ``max_length``,
                ``return_tensors``, ``resample``, ``mono``, ...) to every part that takes them.

        Returns:
            Audio alone: the feature extractor's ``input_values`` [+ ``attention_mask``]. Text
            alone: the tokenizer's ``input_ids`` and ``attention_mask`` (``labels`` with
            ``label_pad_id``). Both: the features plus ``labels``, the tokenizer's
            ``input_ids`` (padded with ``<pad>`` when ``padding`` asks, with ``label_pad_id``
            when given).
        """
        if audio is None and text is None:
            raise ValueError("W2V2Processor needs audio=..., text=... or both; got neither.")
        output_kwargs = self._merge_kwargs(tokenizer_init_kwargs=self.tokenizer.init_kwargs, **kwargs)
        features = None if audio is None else self.feature_extractor(audio, **output_kwargs["audio_kwargs"])
        if text is None:
            return features
        texts = [text] if isinstance(text, str) else list(text)
        if features is not None and len(features["input_values"]) != len(texts):
            raise ValueError(f"got {len(features['input_values'])} utterances but {len(texts)} transcripts; pass one "
                             "transcript per utterance.")  # fmt: skip
        text_kwargs = output_kwargs["text_kwargs"]
        if label_pad_id is None:
            encodings = self.tokenizer(text, **text_kwargs)
            labels = encodings["input_ids"]
        else:
            ids = _ctc_labels(self.tokenizer(texts, **_for_ctc_labels(text_kwargs)), label_pad_id)
            encodings = BatchEncoding({"labels": ids}, tensor_type=text_kwargs.get("return_tensors"))
            labels = encodings["labels"]
        if features is None:
            return encodings
        features["labels"] = labels
        return features

    def pad(self, *args: Any, label_pad_id: int | None = None, **kwargs: Any) -> BatchFeature | BatchEncoding:
        """Pad already-processed examples into a batch, as transformers' ``Wav2Vec2Processor.pad``.

        ``pad(input_features)`` (or ``input_features=``) is ``W2V2FeatureExtractor.pad``;
        ``pad(labels=[{"input_ids": ...}, ...])`` is the tokenizer's ``pad`` (``input_ids``
        padded with ``<pad>``, and ``attention_mask``); with both, the features plus
        ``labels`` (the padded ``input_ids``). Other ``kwargs`` (``padding``,
        ``pad_to_multiple_of``, ``return_tensors`` (default None), ...) go to both.

        Args:
            label_pad_id: w2v2's addition. An id (CTC fine-tuning: ``LABEL_PAD_ID``, -100):
                ``labels`` (batch, max_label_len) with this id after each sequence, what
                transformers' CTC collator makes with ``masked_fill(attention_mask.ne(1), -100)``.
                Label sequences may then also be plain lists of ids.
        """
        input_features = kwargs.pop("input_features", None)
        labels = kwargs.pop("labels", None)
        if args:
            input_features, args = args[0], args[1:]
        if input_features is None and labels is None:
            raise ValueError("W2V2Processor.pad needs input_features=..., labels=... or both; got neither.")
        if input_features is not None:
            input_features = self.feature_extractor.pad(input_features, *args, **kwargs)
        if labels is not None:
            if label_pad_id is None:
                labels = self.tokenizer.pad(labels, **kwargs)
            else:
                if isinstance(labels, (list, tuple)):
                    labels = [item if isinstance(item, Mapping) else {"input_ids": item} for item in labels]
                padded = self.tokenizer.pad(labels, **_for_ctc_labels(kwargs))
                labels = BatchEncoding({"labels": _ctc_labels(padded, label_pad_id)}, tensor_type=kwargs.get("return_tensors"))
        if labels is None:
            return input_features
        if input_features is None:
            return labels
        input_features["labels"] = labels["labels" if label_pad_id is not None else "input_ids"]
        return input_features

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


def _for_ctc_labels(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Tokenizer arguments that give rectangular ids and their mask as lists: padded to the
    longest unless ``padding`` says otherwise (``"max_length"``)."""
    return {**kwargs, "padding": kwargs.get("padding") or "longest", "return_attention_mask": True, "return_tensors": None}


def _ctc_labels(encodings: Any, label_pad_id: int) -> list[list[int]]:
    """``input_ids`` (batch, max_len) with ``label_pad_id`` wherever ``attention_mask`` is 0."""
    ids = np.asarray(encodings["input_ids"], dtype=np.int64).reshape(len(encodings["input_ids"]), -1)  # (B, L)
    mask = np.asarray(encodings["attention_mask"]).reshape(ids.shape)  # (B, L)
    return np.where(mask == 1, ids, label_pad_id).tolist()
