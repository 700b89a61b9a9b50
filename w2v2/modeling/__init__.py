"""wav2vec 2.0 models. Importing this module registers them with transformers' Auto classes."""

from transformers import AutoConfig, AutoModel, AutoModelForCTC, AutoModelForPreTraining

from ..configuration import W2V2Config
from .masking import compute_span_mask, sample_negatives
from .models import from_transformers, W2V2BaseModelOutput, W2V2ForCTC, W2V2ForPreTraining, W2V2ForPreTrainingOutput, W2V2Model, W2V2PreTrainedModel

__all__ = [
    "W2V2PreTrainedModel",
    "W2V2Model",
    "W2V2ForPreTraining",
    "W2V2ForCTC",
    "W2V2BaseModelOutput",
    "W2V2ForPreTrainingOutput",
    "compute_span_mask",
    "sample_negatives",
    "from_transformers",
]

AutoConfig.register(W2V2Config.model_type, W2V2Config, exist_ok=True)
AutoModel.register(W2V2Config, W2V2Model, exist_ok=True)
AutoModelForPreTraining.register(W2V2Config, W2V2ForPreTraining, exist_ok=True)
AutoModelForCTC.register(W2V2Config, W2V2ForCTC, exist_ok=True)
