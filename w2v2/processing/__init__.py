"""Audio and text processing: feature extractor, CTC tokenizer, processor.

Importing registers the three classes with AutoFeatureExtractor, AutoTokenizer and
AutoProcessor for ``model_type="w2v2"`` and under their class names, so directories
saved by them load through the Auto classes after ``import w2v2``.
"""

from transformers import AutoFeatureExtractor, AutoProcessor, AutoTokenizer

from ..configuration import W2V2Config
from .feature_extraction import W2V2FeatureExtractor, receptive_field
from .processor import LABEL_PAD_ID, W2V2Processor
from .processor_with_lm import W2V2ProcessorWithLM, asr_pipeline_with_lm
from .tokenization import W2V2CTCTokenizer, W2V2CTCTokenizerOutput, offsets_to_seconds, word_offsets_from_chars

__all__ = [
    "W2V2FeatureExtractor",
    "W2V2CTCTokenizer",
    "W2V2CTCTokenizerOutput",
    "W2V2Processor",
    "W2V2ProcessorWithLM",
    "asr_pipeline_with_lm",
    "LABEL_PAD_ID",
    "offsets_to_seconds",
    "receptive_field",
    "word_offsets_from_chars",
]

AutoFeatureExtractor.register(W2V2Config, W2V2FeatureExtractor, exist_ok=True)
AutoTokenizer.register(W2V2Config, tokenizer_class=W2V2CTCTokenizer, exist_ok=True)
AutoProcessor.register(W2V2Config, W2V2Processor, exist_ok=True)


class _W2V2WithLMConfig(W2V2Config):
    """Never instantiated: AutoProcessor finds a saved ``processor_class`` among the classes registered
    under configs, one class per config, so W2V2ProcessorWithLM needs a config of its own to be found."""


AutoProcessor.register(_W2V2WithLMConfig, W2V2ProcessorWithLM, exist_ok=True)
