"""The processor with a word n-gram LM: ``W2V2Processor`` plus CTC beam search, saved in the model folder.

``save_pretrained(dir)`` writes the processor's files and the decoder in pyctcdecode's layout
(``alphabet.json`` and ``language_model/``: ``attrs.json`` with alpha and beta, ``unigrams.txt``
and the KenLM model), and marks the feature extractor's entry of ``processor_config.json`` with
``processor_class: W2V2ProcessorWithLM``, which is what transformers' ASR pipeline looks for:
``pipeline("automatic-speech-recognition", model=dir)`` then decodes with the LM by itself
(transformers 5 still does, with a deprecation warning; :func:`asr_pipeline_with_lm` passes the
decoder explicitly). The beam width is saved in ``processor_config.json`` (``lm_beam_width``).

    processor = W2V2ProcessorWithLM.from_processor(W2V2Processor.from_pretrained(model_dir), "lm/")
    processor.save_pretrained(model_dir)           # the LM now ships with the model
    text = processor.batch_decode(logits)          # (batch, frames, vocab) -> beam search with the LM
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..layout import ALPHABET_FILE, MODEL_LM_DIR
from .lm_decoder import NgramCTCDecoder
from .processor import W2V2Processor
from .tokenization import W2V2CTCTokenizerOutput

__all__ = ["W2V2ProcessorWithLM", "asr_pipeline_with_lm"]

PROCESSOR_FILE = "processor_config.json"
BEAM_WIDTH_KEY = "lm_beam_width"


class W2V2ProcessorWithLM(W2V2Processor):
    """A ``W2V2FeatureExtractor``, a ``W2V2CTCTokenizer`` and an ``NgramCTCDecoder``, saved and loaded together.

    ``batch_decode``/``decode`` of logits (floats: ``(batch, frames, vocab)`` / ``(frames, vocab)``)
    run beam search with the LM; of ids (ints) they decode greedily, as ``W2V2Processor`` does.
    """

    def __init__(self, feature_extractor, tokenizer, decoder):
        super().__init__(feature_extractor, tokenizer)
        self.decoder = decoder

    @classmethod
    def from_processor(cls, processor: W2V2Processor, lm: str | os.PathLike, *, alpha: float | None = None,
                       beta: float | None = None, beam_width: int = 32) -> "W2V2ProcessorWithLM":  # fmt: skip
        """``processor`` with an LM: a file, a ``w2v2-build-lm`` folder or a model folder holding ``language_model/``."""
        decoder = NgramCTCDecoder(processor.tokenizer, lm, alpha=alpha, beta=beta, beam_width=beam_width)
        return cls(processor.feature_extractor, processor.tokenizer, decoder)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> "W2V2ProcessorWithLM":
        """A folder or Hub id holding the processor's files, ``alphabet.json`` and ``language_model/``."""
        base = W2V2Processor.from_pretrained(pretrained_model_name_or_path, **kwargs)
        folder = Path(pretrained_model_name_or_path)
        if not folder.is_dir():
            from huggingface_hub import snapshot_download

            hub = {k: kwargs[k] for k in ("revision", "token", "cache_dir", "local_files_only") if k in kwargs}
            folder = Path(snapshot_download(str(pretrained_model_name_or_path), allow_patterns=[
                PROCESSOR_FILE, ALPHABET_FILE, f"{MODEL_LM_DIR}/*"], **hub))  # fmt: skip
        if not (folder / MODEL_LM_DIR).is_dir():
            raise ValueError(f"{pretrained_model_name_or_path} has no {MODEL_LM_DIR}/ folder; build an LM with w2v2-build-lm "
                             "and attach it: W2V2ProcessorWithLM.from_processor(processor, LM_DIR).save_pretrained(dir).")  # fmt: skip
        settings = json.loads((folder / PROCESSOR_FILE).read_text()) if (folder / PROCESSOR_FILE).is_file() else {}
        return cls.from_processor(base, folder, beam_width=settings.get(BEAM_WIDTH_KEY, 32))

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs):
        """The processor's files, then the decoder; ``push_to_hub`` is refused (use ``w2v2.hub.push_to_hub``,
        which uploads the whole folder, LM included)."""
        if push_to_hub:
            raise ValueError("push_to_hub=True would upload the processor without its language_model/; save the folder, "
                             "then w2v2.hub.push_to_hub(save_directory, repo_id).")  # fmt: skip
        files = super().save_pretrained(save_directory, **kwargs)
        self.decoder.save(save_directory)
        path = Path(save_directory) / PROCESSOR_FILE
        settings = json.loads(path.read_text())
        # read by transformers' pipeline (FeatureExtractionMixin.get_feature_extractor_dict returns this entry)
        settings["feature_extractor"]["processor_class"] = type(self).__name__
        settings[BEAM_WIDTH_KEY] = self.decoder.beam_width
        path.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
        return files

    def to_dict(self) -> dict[str, Any]:
        """``processor_config.json`` without the decoder, which is saved in files of its own."""
        return {k: v for k, v in super().to_dict().items() if k != "decoder"}

    def batch_decode(self, logits: Any, *args: Any, output_word_offsets: bool = False, **kwargs: Any):
        """Beam search with the LM over ``logits (batch, frames, vocab)`` (a list of ``(frames, vocab)``
        arrays for utterances of different lengths): texts, or with ``output_word_offsets`` a
        ``W2V2CTCTokenizerOutput`` whose ``word_offsets`` are ``{"word", "start_offset", "end_offset"}``
        in frames. Integer ids are decoded greedily by the tokenizer."""
        if _is_ids(logits):
            return self.tokenizer.batch_decode(logits, *args, output_word_offsets=output_word_offsets, **kwargs)
        decoded = [self.decoder(_numpy(item)) for item in logits]
        texts = [text for text, _ in decoded]
        if not output_word_offsets:
            return texts
        offsets = [[{"word": w, "start_offset": s, "end_offset": e} for w, s, e in words] for _, words in decoded]
        return W2V2CTCTokenizerOutput(text=texts, word_offsets=offsets)

    def decode(self, logits: Any, *args: Any, output_word_offsets: bool = False, **kwargs: Any):
        """``batch_decode`` of one utterance's ``(frames, vocab)`` logits (or greedy, of ids)."""
        if _is_ids(logits):
            return self.tokenizer.decode(logits, *args, output_word_offsets=output_word_offsets, **kwargs)
        out = self.batch_decode([logits], output_word_offsets=output_word_offsets)
        return W2V2CTCTokenizerOutput(text=out.text[0], word_offsets=out.word_offsets[0]) if output_word_offsets else out[0]


def _numpy(array: Any) -> np.ndarray:
    if hasattr(array, "detach"):
        array = array.detach().float().cpu().numpy()
    return np.asarray(array, dtype=np.float32)


def _is_ids(values: Any) -> bool:
    first = values
    while isinstance(first, (list, tuple)) and first:
        first = first[0]
    dtype = getattr(first, "dtype", None)
    if dtype is None:
        return isinstance(first, (int, np.integer))
    return not (getattr(dtype, "is_floating_point", False) or np.issubdtype(np.dtype(str(dtype).removeprefix("torch.")), np.floating))


def asr_pipeline_with_lm(model_name_or_path: str, **kwargs):
    """transformers' ASR pipeline that decodes with the LM saved in ``model_name_or_path``, passed as
    ``decoder=`` (the route that does not depend on the pipeline finding the LM by itself).
    ``kwargs`` go to ``transformers.pipeline``; chunking and ``return_timestamps="word"`` work as usual."""
    from transformers import pipeline

    processor = W2V2ProcessorWithLM.from_pretrained(model_name_or_path)
    return pipeline("automatic-speech-recognition", model=model_name_or_path, feature_extractor=processor.feature_extractor,
                    tokenizer=processor.tokenizer, decoder=processor.decoder.beam_search, **kwargs)  # fmt: skip
