"""Batches for CTC fine-tuning: decode, tokenize and pad in the collator.

Examples stay raw (an audio column and a transcription column) until a batch is drawn, so no
``map`` pass decodes the corpus up front and ``group_by_length`` reads lengths from a
precomputed duration column. The processor pads audio with the feature extractor's
``padding_value`` (plus ``attention_mask`` where the feature extractor asks for one) and labels
with -100, which the CTC loss ignores.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import torch

from .audio_data import decode_audio

logger = logging.getLogger(__name__)

__all__ = ["DataCollatorCTCWithPadding", "normalize_transcript", "DEFAULT_CHARS_TO_IGNORE"]

DEFAULT_CHARS_TO_IGNORE = ',?.!;:"“”«»¿¡()[]{}'


def normalize_transcript(text: str, chars_to_ignore: str = DEFAULT_CHARS_TO_IGNORE) -> str:
    """Drop the punctuation in ``chars_to_ignore`` and squeeze whitespace.

    Case is the tokenizer's business (``W2V2CTCTokenizer(case_folding=...)``). LibriSpeech-style
    transcripts (upper case, apostrophes kept) pass through unchanged.
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
    skipped: list[str] = field(default_factory=list)

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
        batch = self.processor(
            audio=audio, text=texts, sampling_rate=rate, resample=True, pad_to_multiple_of=self.pad_to_multiple_of,
            return_tensors="pt",
        )  # fmt: skip
        return dict(batch)


def _decoded(value: Any, sampling_rate: int) -> Any:
    """Undecoded audio cells become float32 arrays; anything else goes to the feature extractor as is."""
    if isinstance(value, dict) and "array" not in value and ("path" in value or "bytes" in value):
        return decode_audio(value, sampling_rate)
    return value
