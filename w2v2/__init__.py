"""w2v2: wav2vec 2.0 (Baevski et al., 2020) for Hugging Face.

Importing this package registers every class with transformers' Auto classes, so that
``AutoModelForCTC.from_pretrained(dir)`` and friends load w2v2 checkpoints.
"""

from .configuration import W2V2Config
from .modeling import (
    W2V2ForCTC,
    W2V2ForPreTraining,
    W2V2ForPreTrainingOutput,
    W2V2Model,
    W2V2PreTrainedModel,
    compute_span_mask,
    from_transformers,
    sample_negatives,
)
from .processing import *  # noqa: F401,F403  (feature extractor, tokenizer, processor)
from .processing import __all__ as _processing_all
from .conversion import to_transformers

__version__ = "0.1.0"

__all__ = [
    "W2V2Config",
    "W2V2Model",
    "W2V2PreTrainedModel",
    "W2V2ForPreTraining",
    "W2V2ForPreTrainingOutput",
    "W2V2ForCTC",
    "compute_span_mask",
    "sample_negatives",
    "to_transformers",
    "from_transformers",
    *_processing_all,
]
