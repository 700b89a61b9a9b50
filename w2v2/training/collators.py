"""Batches for CTC fine-tuning: decode, tokenize and pad in the collator.

Examples stay raw (an audio column and a transcription column) until a batch is drawn, so no
``map`` pass decodes the corpus up front and ``group_by_length`` reads lengths from a
precomputed duration column. The processor pads audio with the feature extractor's
``padding_value`` (plus ``attention_mask`` where the feature extractor asks for one) and labels
with -100, which the CTC loss ignores. Given the model's samples-to-frames function, the
collator names the files whose label CTC cannot align (issue 15, item 9).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import torch

from ..modeling.losses import ctc_frames_needed
from ..processing.processor import LABEL_PAD_ID
from ..processing.audio import load_audio

logger = logging.getLogger(__name__)

__all__ = ["DataCollatorCTCWithPadding", "normalize_transcript", "DEFAULT_CHARS_TO_IGNORE"]

DEFAULT_CHARS_TO_IGNORE = ',?.!;:"“”«»¿¡()[]{}'


def normalize_transcript(text: str, chars_to_ignore: str = DEFAULT_CHARS_TO_IGNORE) -> str:
    """Drop the punctuation in ``chars_to_ignore`` and squeeze whitespace.

    Case is the tokenizer's business (``W2V2CTCTokenizer(case_folding=...)``, applied by its
    ``normalize_text`` when it encodes). LibriSpeech-style transcripts (upper case, apostrophes
    kept) pass through unchanged.
    """
    if chars_to_ignore:
        text = re.sub(f"[{re.escape(chars_to_ignore)}]", "", text)
    return " ".join(text.split())


@dataclass
class DataCollatorCTCWithPadding:
    """Collate raw rows ``{audio_column: audio, text_column: str}`` into a CTC batch.

    Args:
        processor: a ``W2V2Processor``.
        audio_column: column holding audio: undecoded ``{"path", "bytes"}`` cells (what
            ``load_audio_dataset`` returns; decoded and resampled here), datasets ``Audio``
            decoders or dicts with ``array``/``sampling_rate`` (resampled from their own rate),
            or 1-D arrays at the model's rate.
        text_column: column holding transcriptions; ``None`` collates audio only (inference).
        chars_to_ignore: punctuation dropped (:func:`normalize_transcript`) before
            tokenization; use the same value as when the vocabulary was built.
        pad_to_multiple_of: round the padded audio length up to a multiple of this.
        mono: the feature extractor's channel policy for multi-channel audio: ``"mean"``
            (default) averages the channels, None refuses such a file (a ValueError).
        frames_of: samples -> encoder frames (``model._get_feat_extract_output_lengths``). With
            it, a label that needs more frames than its audio has (:func:`ctc_frames_needed`:
            CTC cannot align it) is named in a warning per batch and listed in ``too_long``.

    Returns a dict of tensors: ``input_values`` (batch, samples) float32, ``attention_mask``
    (batch, samples) when the feature extractor returns one, ``labels`` (batch, label_len)
    int64 padded with -100.

    An undecodable, missing or NaN audio file is left out of its batch with a warning that
    names it; ``skipped`` lists every file left out so far. A batch with no usable file left
    is an error.
    """

    processor: Any
    audio_column: str = "audio"
    text_column: str | None = "transcription"
    chars_to_ignore: str = DEFAULT_CHARS_TO_IGNORE
    pad_to_multiple_of: int | None = None
    mono: str | None = "mean"
    skipped: list[str] = field(default_factory=list)
    frames_of: Any = None
    too_long: list[str] = field(default_factory=list)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        for column in (self.audio_column, self.text_column):
            if column is not None and column not in examples[0]:
                raise ValueError(
                    f"column {column!r} is missing from the examples (found {sorted(examples[0])}); set audio_column/"
                    "text_column, and remove_unused_columns=False so that the Trainer keeps raw columns."
                )
        rate = self.processor.feature_extractor.sampling_rate
        audio, kept = [], []
        for example in examples:
            try:
                audio.append(_decoded(example[self.audio_column], rate))
                kept.append(example)
            except RuntimeError as error:  # one bad file must not end a long run
                self.skipped.append(str(error))
                logger.warning("leaving out of the batch (%d so far): %s", len(self.skipped), error)
        if not kept:
            raise RuntimeError(f"no usable audio in a batch of {len(examples)}: {'; '.join(self.skipped[-len(examples):])}")
        examples = kept
        texts = None
        if self.text_column is not None:
            texts = [normalize_transcript(example[self.text_column], self.chars_to_ignore) for example in examples]
        audio_kwargs = {"sampling_rate": rate, "resample": True, "pad_to_multiple_of": self.pad_to_multiple_of, "mono": self.mono}
        batch = self.processor(audio=audio, text=texts, audio_kwargs=audio_kwargs, label_pad_id=LABEL_PAD_ID,
                               return_tensors="pt")  # fmt: skip
        if self.frames_of is not None and "labels" in batch:
            self._name_labels_too_long(batch, audio, examples)
        return dict(batch)

    def _name_labels_too_long(self, batch, audio: list, examples: list[dict[str, Any]]) -> None:
        """Warn about, and list in ``too_long``, the files whose label needs more frames than
        their own (unpadded) audio gives."""
        if "attention_mask" in batch:
            samples = batch["attention_mask"].long().sum(-1)
        else:  # decoded arrays are at the model's rate; anything else counts as the padded length
            padded = batch["input_values"].shape[-1]
            samples = torch.tensor([len(a) if getattr(a, "ndim", 0) == 1 else padded for a in audio])
        frames = torch.as_tensor(self.frames_of(samples))  # (B,)
        needed = ctc_frames_needed(batch["labels"], self.processor.tokenizer.pad_token_id)  # (B,)
        found = [
            f"{_file_name(examples[i][self.audio_column], i)} ({int(needed[i])} label frames, {int(frames[i])} audio frames)"
            for i in (needed > frames).nonzero().flatten().tolist()
        ]  # fmt: skip
        if found:
            self.too_long += found
            logger.warning("CTC cannot align the label of %d file(s) in this batch, longer than their audio (%d so far): "
                           "%s; drop these utterances or check their transcripts.", len(found), len(self.too_long),
                           "; ".join(found))  # fmt: skip


def _file_name(value: Any, row: int) -> str:
    path = value.get("path") if isinstance(value, dict) else None
    return str(path) if path else f"row {row} of the batch (no file name)"


def _decoded(value: Any, sampling_rate: int) -> Any:
    """Undecoded audio cells become float32 arrays, (samples,) or (channels, samples): the feature
    extractor applies its channel policy to them as to anything else, which goes to it as is."""
    if isinstance(value, dict) and "array" not in value and ("path" in value or "bytes" in value):
        return load_audio(value, sampling_rate, mono=None)
    return value
