"""The w2v2 models: W2V2Model (f and g), W2V2ForPreTraining (+ Z -> Q and the objective),
W2V2ForCTC (+ a linear CTC head). Only these classes read the configuration."""

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel, Wav2Vec2ForPreTraining
from transformers import initialization as init
from transformers.modeling_outputs import CausalLMOutput, Wav2Vec2BaseModelOutput
from transformers.utils import ModelOutput

from ..configuration import W2V2Config
from ..conversion import OURS_OF, config_values_from_transformers, load_transformers_weights
from .components import (Encoder, FeatureEncoder, FeatureProjection, GumbelVectorQuantizer, KmeansVectorQuantizer,
                         PositionalConvEmbedding, Squeeze, grad_multiply)
from .losses import contrastive_logits, contrastive_loss, ctc_frames_needed, diversity_loss, pretraining_loss
from .masking import compute_span_mask, sample_negatives

logger = logging.getLogger(__name__)

__all__ = ["from_transformers", "W2V2PreTrainedModel", "W2V2Model", "W2V2ForPreTraining", "W2V2ForCTC", "W2V2BaseModelOutput", "W2V2ForPreTrainingOutput"]


@dataclass
class W2V2BaseModelOutput(Wav2Vec2BaseModelOutput):
    """transformers' fields, plus ``feature_penalty``: mean of z**2 over the encoder output
    (before its LayerNorm), fairseq's ``features_pen``."""

    feature_penalty: torch.FloatTensor | None = None


@dataclass
class W2V2ForPreTrainingOutput(ModelOutput):
    """Output of :class:`W2V2ForPreTraining`.

    transformers' fields: ``loss``, ``projected_states`` (B, T, D), ``projected_quantized_states``
    (B, T, D), ``codevector_perplexity``, ``hidden_states``, ``attentions``,
    ``contrastive_loss`` (L_m summed over the N masked frames), ``diversity_loss`` (L_d * N, also
    as transformers). ``loss`` differs in reduction: it is per masked frame, (L_m + alpha L_d N + beta P N) / N
    (see ``w2v2.modeling.losses``). Added: ``feature_penalty`` (P), ``contrastive_accuracy``,
    ``code_perplexity`` (hard choices), ``prob_perplexity`` (softmax), ``num_masked`` (N) and
    the ``mask_time_indices`` used; with ``config.quantizer="kmeans"``, ``kmeans_loss`` (vq-wav2vec's
    codebook + commitment loss L_k, a mean, already in ``loss`` with ``kmeans_loss_weight``). With ``quantize_masked_only=True`` the two (B, T, D)
    projections are not computed and are None.
    """

    loss: torch.FloatTensor | None = None
    projected_states: torch.FloatTensor | None = None
    projected_quantized_states: torch.FloatTensor | None = None
    codevector_perplexity: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    contrastive_loss: torch.FloatTensor | None = None
    diversity_loss: torch.FloatTensor | None = None
    feature_penalty: torch.FloatTensor | None = None
    contrastive_accuracy: torch.FloatTensor | None = None
    code_perplexity: torch.FloatTensor | None = None
    prob_perplexity: torch.FloatTensor | None = None
    num_masked: torch.LongTensor | None = None
    mask_time_indices: torch.BoolTensor | None = None
    kmeans_loss: torch.FloatTensor | None = None


# A pretraining checkpoint carries the quantizer and projections; the encoder and CTC models
# load from it without them, silently.
_PRETRAINING_ONLY = [r"^quantizer\.", r"^project_hid\.", r"^project_q\."]


def check_inputs(input_values, attention_mask, *, receptive_field: int, dtype: torch.dtype) -> None:
    """Refuse inputs the model would misread or fail on with a raw torch error.

    input_values: (B, S) floating waveform of at least one frame's receptive field;
    attention_mask: (B, S) like it. ``dtype`` is the model's; float64 input into a float32
    model is refused rather than cast silently.
    """
    if not isinstance(input_values, torch.Tensor):
        raise TypeError(f"input_values is a {type(input_values).__name__}; pass a torch tensor (the processor's return_tensors='pt').")
    if input_values.dim() != 2:
        shape = tuple(input_values.shape)
        fix = "add a batch dimension: input_values[None]" if input_values.dim() == 1 else "pass (batch, samples), e.g. input_values.squeeze(1) for (batch, 1, samples)"
        raise ValueError(f"input_values has shape {shape}; the model takes (batch, samples): {fix}.")
    if not input_values.is_floating_point():
        raise ValueError(f"input_values has dtype {input_values.dtype}; pass float samples in [-1, 1] (the feature extractor converts integer PCM).")
    if input_values.dtype == torch.float64 and dtype != torch.float64:
        raise ValueError(f"input_values is float64 and the model {dtype}; pass input_values.to({dtype}).")
    if input_values.shape[-1] < receptive_field:
        raise ValueError(f"input_values has {input_values.shape[-1]} samples, fewer than one frame of the feature encoder "
                         f"({receptive_field}); pad or drop such short audio.")  # fmt: skip
    if attention_mask is not None and tuple(attention_mask.shape) != tuple(input_values.shape):
        raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)} but input_values {tuple(input_values.shape)}; "
                         "they must match (1 on real samples, 0 on padding).")  # fmt: skip


class W2V2PreTrainedModel(PreTrainedModel):
    config_class = W2V2Config
    config: W2V2Config
    base_model_prefix = "wav2vec2"
    main_input_name = "input_values"
    input_modalities = "audio"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, config: W2V2Config, *inputs, **kwargs):
        # A config is checked when it is made; one changed since (``config.add_adapter = True``)
        # is checked again here, before any layer is built, with the same one-line errors.
        if isinstance(config, W2V2Config):
            config.check_values()
        super().__init__(config, *inputs, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module):
        # The initialisations of fairseq and transformers, module by module.
        super()._init_weights(module)
        if isinstance(module, W2V2ForPreTraining):
            module.project_hid.reset_parameters()
            module.project_q.reset_parameters()
        elif isinstance(module, GumbelVectorQuantizer):
            init.normal_(module.weight_proj.weight, mean=0.0, std=1.0)
            init.zeros_(module.weight_proj.bias)
            init.uniform_(module.codevectors)
        elif isinstance(module, KmeansVectorQuantizer):
            bound = math.sqrt(1 / module.weight.shape[1])  # a 1x1 convolution's default, fan-in C/G
            init.uniform_(module.weight, a=-bound, b=bound)
            init.normal_(module.codevectors, mean=0.0, std=0.01)  # vq-wav2vec's codebook initialisation
            init.ones_(module.norm.weight)
            init.zeros_(module.norm.bias)
        elif isinstance(module, PositionalConvEmbedding):
            # weight = g * v / ||v||: draw v, start with g = ||v|| so that weight = v.
            conv = module.conv
            v = conv.parametrizations.weight.original1
            init.normal_(v, mean=0.0, std=2 * math.sqrt(1 / (conv.kernel_size[0] * conv.in_channels)))
            init.copy_(conv.parametrizations.weight.original0, torch.linalg.vector_norm(v, dim=(0, 1), keepdim=True))
            init.zeros_(conv.bias)
        elif isinstance(module, FeatureProjection):
            bound = math.sqrt(1 / module.projection.in_features)
            init.uniform_(module.projection.weight, a=-bound, b=bound)
            init.uniform_(module.projection.bias, a=-bound, b=bound)
        elif isinstance(module, nn.Conv1d) and not hasattr(module, "parametrizations"):
            init.kaiming_normal_(module.weight)
            if module.bias is not None:
                bound = math.sqrt(module.groups / (module.in_channels * module.kernel_size[0]))
                init.uniform_(module.bias, a=-bound, b=bound)
        elif isinstance(module, W2V2Model):
            init.uniform_(module.masked_spec_embed)

    # ------------------------------------------------------------------ lengths
    def _get_feat_extract_output_lengths(self, input_lengths, add_adapter=None):
        """Frames produced by the feature encoder for ``input_lengths`` samples (int or tensor)."""
        for kernel, stride in zip(self.config.conv_kernel, self.config.conv_stride):
            input_lengths = torch.div(input_lengths - kernel, stride, rounding_mode="floor") + 1
        return input_lengths

    def _get_feature_vector_attention_mask(self, feature_vector_length: int, attention_mask: torch.Tensor, add_adapter=None):
        """Sample-level ``attention_mask`` (B, S) -> frame-level bool mask (B, T)."""
        lengths = self._get_feat_extract_output_lengths(attention_mask.long().sum(-1))  # (B,)
        frames = torch.arange(feature_vector_length, device=attention_mask.device)
        return frames[None, :] < lengths[:, None]

    # ------------------------------------------------------------------ interop
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, config=None, **kwargs):
        """Load a w2v2 checkpoint, or a transformers ``Wav2Vec2*`` one (``model_type: wav2vec2``),
        whose config is converted here; the weights have the same names and load as they are."""
        if config is None and pretrained_model_name_or_path is not None:
            config, kwargs = W2V2Config.from_any_pretrained(pretrained_model_name_or_path, **kwargs)
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, config=config, **kwargs)

    @classmethod
    def from_transformers(cls, model: PreTrainedModel):
        """This class with the config and weights of a transformers ``Wav2Vec2Model``/``ForPreTraining``/
        ``ForCTC`` (same device and dtype). Parameter names are the same on both sides; w2v2 always
        has ``masked_spec_embed`` (pretraining needs it), transformers only with SpecAugment on. A
        pretraining model loaded into ``W2V2ForCTC`` gets a new head, as ``from_pretrained`` gives."""
        values = config_values_from_transformers(model.config.to_dict())
        if isinstance(model, Wav2Vec2ForPreTraining):
            values["gumbel_temperature"] = float(model.quantizer.temperature)
        param = next(model.parameters())
        return load_transformers_weights(cls(W2V2Config(**values)).to(device=param.device, dtype=param.dtype), model)

    def _outputs(self, output, return_dict):
        use_dict = self.config.return_dict if return_dict is None else return_dict
        return output if use_dict else output.to_tuple()


class W2V2Model(W2V2PreTrainedModel):
    """f: X -> Z, then g: Z -> C. Returns C (``last_hidden_state``) and normalised Z (``extract_features``)."""

    _keys_to_ignore_on_load_unexpected = [*_PRETRAINING_ONLY, r"^lm_head\."]

    def __init__(self, config: W2V2Config):
        super().__init__(config)
        self.feature_extractor = FeatureEncoder(
            config.conv_dim,
            config.conv_kernel,
            config.conv_stride,
            bias=config.conv_bias,
            norm_mode=config.feat_extract_norm,
            activation=config.feat_extract_activation,
        )
        self.feature_projection = FeatureProjection(config.conv_dim[-1], config.hidden_size, eps=config.layer_norm_eps, dropout=config.feat_proj_dropout)
        # The learned vector that replaces masked frames (pretraining mask and SpecAugment).
        self.masked_spec_embed = nn.Parameter(torch.empty(config.hidden_size))
        self.encoder = Encoder(
            config.hidden_size,
            config.num_hidden_layers,
            config.num_attention_heads,
            config.intermediate_size,
            activation=config.hidden_act,
            dropout=config.hidden_dropout,
            attention_dropout=config.attention_dropout,
            activation_dropout=config.activation_dropout,
            eps=config.layer_norm_eps,
            layer_norm_first=config.do_stable_layer_norm,
            layerdrop=config.layerdrop,
            pos_conv_kernel=config.num_conv_pos_embeddings,
            pos_conv_groups=config.num_conv_pos_embedding_groups,
            pos_conv_activation=config.feat_extract_activation,
        )
        # SEW's squeeze around g (none by default, as in the paper and transformers)
        self.squeeze = Squeeze(config.hidden_size, config.squeeze_factor) if config.squeeze_factor > 1 else None
        self.post_init()
        if config.feature_grad_mult == 0:
            # No gradient reaches f at all: mark it frozen so that DDP does not wait for it.
            self.freeze_feature_encoder()

    def freeze_feature_encoder(self):
        """Stop training f: X -> Z (its parameters get no gradient)."""
        self.feature_extractor.requires_grad_(False)

    def _mask_hidden_states(self, hidden, mask_time_indices, frame_mask):
        """Replace masked frames by ``masked_spec_embed``; in training, add SpecAugment.

        hidden: (B, T, D). A given ``mask_time_indices`` (the pretraining mask) is always
        applied (transformers skips it when ``apply_spec_augment`` is False); otherwise, in
        training, time spans (``mask_time_*``) and channel spans (``mask_feature_*``) are drawn.
        """
        cfg = self.config
        B, T, D = hidden.shape
        if mask_time_indices is None and self.training and cfg.apply_spec_augment and cfg.mask_time_prob > 0:
            mask_time_indices = compute_span_mask((B, T), cfg.mask_time_prob, cfg.mask_time_length, min_masks=cfg.mask_time_min_masks, attention_mask=frame_mask, device=hidden.device)
        if mask_time_indices is not None:
            hidden = torch.where(mask_time_indices[..., None], self.masked_spec_embed.to(hidden.dtype), hidden)
        if self.training and cfg.apply_spec_augment and cfg.mask_feature_prob > 0:
            channels = compute_span_mask((B, D), cfg.mask_feature_prob, cfg.mask_feature_length, min_masks=cfg.mask_feature_min_masks, device=hidden.device)
            hidden = hidden.masked_fill(channels[:, None, :], 0.0)
        return hidden

    def forward(self, input_values, attention_mask=None, mask_time_indices=None, output_attentions=None, output_hidden_states=None, return_dict=None, compute_feature_penalty=False, **kwargs):
        """input_values: (B, S) waveform; attention_mask: (B, S), 1 on real samples;
        mask_time_indices: (B, T) bool frames to replace by the mask embedding;
        compute_feature_penalty: also return mean(z**2) (the pretraining head asks for it)."""
        cfg = self.config
        check_inputs(input_values, attention_mask, receptive_field=cfg.receptive_field, dtype=self.dtype)
        output_attentions = cfg.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = cfg.output_hidden_states if output_hidden_states is None else output_hidden_states

        # f: X -> Z, with the gradient reaching it scaled by feature_grad_mult (0 = frozen).
        if cfg.feature_grad_mult > 0:
            z = grad_multiply(self.feature_extractor(input_values), cfg.feature_grad_mult)  # (B, C, T)
        else:
            with torch.no_grad():
                z = self.feature_extractor(input_values)
        z = z.transpose(1, 2)  # (B, T, C)
        feature_penalty = z.float().pow(2).mean() if compute_feature_penalty else None

        frame_mask = None
        if attention_mask is not None:
            frame_mask = self._get_feature_vector_attention_mask(z.shape[1], attention_mask)  # (B, T)
        hidden, z_norm = self.feature_projection(z)  # (B, T, D), (B, T, C)
        if mask_time_indices is not None:
            mask_time_indices = mask_time_indices.bool()
        hidden = self._mask_hidden_states(hidden, mask_time_indices, frame_mask)

        # g: Z -> C; with the squeeze, the Transformer's hidden states and attentions have ceil(T / s) frames
        encoder_input, encoder_mask = (hidden, frame_mask) if self.squeeze is None else self.squeeze.pool(hidden, frame_mask)
        c, hidden_states, attentions = self.encoder(encoder_input, encoder_mask, output_hidden_states=output_hidden_states, output_attentions=output_attentions)
        if self.squeeze is not None:
            c = self.squeeze.unpool(c, hidden.shape[1])  # (B, T, D)
        output = W2V2BaseModelOutput(last_hidden_state=c, extract_features=z_norm, hidden_states=hidden_states, attentions=attentions, feature_penalty=feature_penalty)
        return self._outputs(output, return_dict)


class W2V2ForPreTraining(W2V2PreTrainedModel):
    """wav2vec 2.0 pretraining: mask spans of Z, predict the quantized Q at the masked frames
    from the context C among K distractors (L_m), keep the codebooks in use (L_d), and keep
    the encoder activations small (feature penalty)."""

    def __init__(self, config: W2V2Config):
        super().__init__(config)
        self.wav2vec2 = W2V2Model(config)
        self.dropout_features = nn.Dropout(config.feat_quantizer_dropout)
        quantizer_sizes = (config.conv_dim[-1], config.num_codevector_groups, config.num_codevectors_per_group, config.codevector_dim)
        if config.quantizer == "kmeans":
            self.quantizer = KmeansVectorQuantizer(*quantizer_sizes, gamma=config.kmeans_commitment_weight)
        else:
            self.quantizer = GumbelVectorQuantizer(*quantizer_sizes, temperature=config.gumbel_temperature)
        self.project_hid = nn.Linear(config.hidden_size, config.proj_codevector_dim)
        self.project_q = nn.Linear(config.codevector_dim, config.proj_codevector_dim)
        self.post_init()

    def set_gumbel_temperature(self, temperature: float):
        """Set tau of the Gumbel softmax; it is stored in ``config.gumbel_temperature`` and saved."""
        if temperature <= 0:
            raise ValueError(f"temperature={temperature} must be positive.")
        self.quantizer.temperature = float(temperature)
        self.config.gumbel_temperature = float(temperature)

    def gumbel_temperature_at(self, step: int) -> float:
        """The paper's schedule: max(tau_min, tau_max * decay**step)."""
        return self.config.gumbel_temperature_at(step)

    def freeze_feature_encoder(self):
        self.wav2vec2.freeze_feature_encoder()

    @torch.no_grad()
    def quantize(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Discrete speech units: input_values (B, S) -> codes (B, T, G), int64 in [0, V).

        The codebook entry that each frame's unmasked, normalised Z picks in every group, without
        Gumbel noise (fairseq's ``quantize`` / ``forward_idx``); f and the quantizer run, the
        Transformer does not. Deterministic in train and eval mode alike (dropout is skipped).
        Frames past an utterance's end (by ``attention_mask``) are -1.
        """
        cfg = self.config
        check_inputs(input_values, attention_mask, receptive_field=cfg.receptive_field, dtype=self.dtype)
        z = self.wav2vec2.feature_extractor(input_values).transpose(1, 2)  # (B, T, C)
        z_norm = self.wav2vec2.feature_projection.layer_norm(z)  # the quantizer's input, as in forward
        codes = self.quantizer.codes(z_norm)  # (B, T, G)
        if attention_mask is not None:
            frames = self._get_feature_vector_attention_mask(codes.shape[1], attention_mask)  # (B, T)
            codes = codes.masked_fill(~frames.bool()[..., None], -1)
        return codes

    def sample_masks(self, input_values, attention_mask=None, generator=None):
        """Draw the pretraining mask (B, T) and distractor indices (B, T, K) for a batch, in torch
        on the input's device, with the configuration's p*M, M, min_masks and K."""
        cfg = self.config
        frames = int(self._get_feat_extract_output_lengths(input_values.shape[-1]))
        frame_mask = None if attention_mask is None else self._get_feature_vector_attention_mask(frames, attention_mask)
        mask = compute_span_mask(
            (input_values.shape[0], frames),
            cfg.pretrain_mask_time_prob,
            cfg.pretrain_mask_time_length,
            min_masks=cfg.pretrain_mask_time_min_masks,
            attention_mask=frame_mask,
            generator=generator,
            device=input_values.device,
        )
        return mask, sample_negatives(mask, cfg.num_negatives, generator=generator)

    def forward(self, input_values, attention_mask=None, mask_time_indices=None, sampled_negative_indices=None, generator=None, output_attentions=None, output_hidden_states=None, return_dict=None, quantize_masked_only=False, **kwargs):
        """input_values: (B, S); mask_time_indices: (B, T) bool; sampled_negative_indices:
        (B, T, K) indices into the flattened (B*T) frames. Masks and negatives not given are
        sampled here (from ``generator`` if given). In eval mode with neither a mask nor a
        ``generator``, the pass is unmasked and deterministic, as in transformers: c and q for every
        frame, no loss (pass ``mask_time_indices`` or ``generator`` to score a validation batch).

        quantize_masked_only: quantize and project only the frames the loss reads (the masked
        frames and their distractors), as fairseq does; faster, and ``projected_states`` /
        ``projected_quantized_states`` are then None. By default every frame is, since
        transformers' users read those (B, T, D) outputs. The loss is the same either way (in
        training, Gumbel noise is drawn for fewer frames; feature dropout still covers all).
        """
        cfg = self.config
        if mask_time_indices is None and generator is None and not self.training:
            return self._unmasked_forward(input_values, attention_mask, output_attentions, output_hidden_states, return_dict)
        if mask_time_indices is None:
            mask_time_indices, sampled = self.sample_masks(input_values, attention_mask, generator)
            sampled_negative_indices = sampled if sampled_negative_indices is None else sampled_negative_indices
        mask = mask_time_indices.bool()  # (B, T)
        if sampled_negative_indices is None:
            sampled_negative_indices = sample_negatives(mask, cfg.num_negatives, generator=generator)

        outputs = self.wav2vec2(input_values, attention_mask=attention_mask, mask_time_indices=mask, output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True, compute_feature_penalty=True)
        B, T = mask.shape
        masked = mask.reshape(-1).nonzero().squeeze(1)  # (N,) masked frames in the flattened (B*T) axis
        negatives = sampled_negative_indices.reshape(B * T, -1)[masked].long()  # (N, K) distractor frames
        features = self.dropout_features(outputs.extract_features)  # (B, T, C) unmasked Z

        kmeans = cfg.quantizer == "kmeans"
        c, q, c_masked, q_rows, positives, negatives, codes, quantized = self._context_and_targets(
            outputs.last_hidden_state, features, mask, masked, negatives, quantize_masked_only)
        # 3.-4. logits sim(c_t, [q_t, K distractors]) / kappa for the masked frames: (N, K+1)
        logits = contrastive_logits(c_masked, q_rows, positives, negatives, cfg.contrastive_logits_temperature, codes=codes)
        # 5. L_m, summed over the N masked frames, and accuracy
        loss_m, accuracy = contrastive_loss(logits)
        # 6. L_d from the perplexity over masked frames. In training it is the softmax
        #    (prob) perplexity as in the paper and fairseq; in eval transformers uses the hard
        #    (code) perplexity, and so do we, so that validation figures agree with it.
        #    vq-wav2vec's k-means quantizer has no L_d; its codebook and commitment loss L_k
        #    (a mean over frames) takes that place.
        num_codevectors = cfg.num_codevector_groups * cfg.num_codevectors_per_group
        num_masked = mask.sum()
        if kmeans:
            loss_d = torch.zeros((), device=loss_m.device)
            loss_k = quantized["kmeans_loss"]
        else:
            loss_d = diversity_loss(quantized["codevector_perplexity"], num_codevectors) * num_masked  # L_d * N, as transformers
            loss_k = None
        # 7. L = (L_m + alpha * L_d * N + beta * penalty * N) / N (+ w_k * L_k), per masked frame
        frames = num_masked.clamp(min=1)
        loss = pretraining_loss(loss_m / frames, loss_d / frames, outputs.feature_penalty, loss_k, config=cfg)

        output = W2V2ForPreTrainingOutput(
            loss=loss,
            projected_states=c,
            projected_quantized_states=q,
            codevector_perplexity=quantized["codevector_perplexity"],
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            contrastive_loss=loss_m,
            diversity_loss=loss_d,
            feature_penalty=outputs.feature_penalty,
            contrastive_accuracy=accuracy,
            code_perplexity=quantized["code_perplexity"],
            prob_perplexity=quantized["prob_perplexity"],
            num_masked=num_masked,
            mask_time_indices=mask,
            kmeans_loss=loss_k,
        )
        return self._outputs(output, return_dict)

    def _context_and_targets(self, hidden, features, mask, masked, negatives, quantize_masked_only):
        """Steps 1-2 of the objective: c_t = project_hid(C) for the masked frames and the targets
        q = project_q(Q(Z)) that their logits read.

        Args: hidden (B, T, H) C; features (B, T, C) Z after feature dropout; mask (B, T);
        masked (N,) masked frames and negatives (N, K) distractors, in the flattened (B*T) axis.
        Returns (c (B, T, D) or None, q (B, T, D) or None, c_masked (N, D), q_rows (M, D), the
        rows of q_rows holding each masked frame's positive (N,) and negatives (N, K), the
        codes of q_rows, the quantizer's output).
        """
        B, T = mask.shape
        if quantize_masked_only:
            # The frames the loss reads; row[i] is frame i's row among them.
            needed = mask.reshape(-1).clone()
            needed[negatives.reshape(-1)] = True
            needed = needed.nonzero().squeeze(1)  # (M,) in time order
            row = torch.full((B * T,), -1, dtype=torch.long, device=mask.device)
            row[needed] = torch.arange(needed.numel(), device=mask.device)
            # 1. context vectors c_t of the masked frames, projected to the codevector space: (N, D)
            c_masked = self.project_hid(hidden.reshape(B * T, -1)[masked])
            # 2. targets q = Z -> Q of the unmasked features, projected: (M, D)
            if self.config.quantizer == "kmeans":  # its group norm reads whole utterances: quantize every frame, keep the rows needed
                quantized = self.quantizer(features, mask)
                q_needed, codes = quantized["q"].reshape(B * T, -1)[needed], quantized["codes"].reshape(B * T, -1)[needed]
            else:
                quantized = self.quantizer(features.reshape(B * T, -1)[needed], mask.reshape(-1)[needed])
                q_needed, codes = quantized["q"], quantized["codes"]
            q_rows = self.project_q(q_needed.to(self.project_q.weight.dtype))
            return None, None, c_masked, q_rows, row[masked], row[negatives], codes, quantized
        # 1. c_t for every frame: (B, T, D); 2. q_t for every frame: (B, T, D). Only masked
        #    frames enter the loss and the perplexities.
        c = self.project_hid(hidden)
        quantized = self.quantizer(features, mask)
        q = self.project_q(quantized["q"].to(self.project_q.weight.dtype))
        return c, q, c.reshape(B * T, -1)[masked], q.reshape(B * T, -1), masked, negatives, quantized["codes"].reshape(B * T, -1), quantized

    def _unmasked_forward(self, input_values, attention_mask, output_attentions, output_hidden_states, return_dict):
        """Eval without a mask: c = project_hid(C) and q = project_q(Q) for every frame, the
        perplexity over the real frames, loss None (transformers' Wav2Vec2ForPreTraining likewise)."""
        outputs = self.wav2vec2(input_values, attention_mask=attention_mask, output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True)
        features = outputs.extract_features  # (B, T, C) Z
        B, T = features.shape[:2]
        frames = None if attention_mask is None else self._get_feature_vector_attention_mask(T, attention_mask).bool()
        quantized = self.quantizer(features, frames)  # perplexity over every frame when None
        output = W2V2ForPreTrainingOutput(
            projected_states=self.project_hid(outputs.last_hidden_state),
            projected_quantized_states=self.project_q(quantized["q"].to(self.project_q.weight.dtype)),
            codevector_perplexity=quantized["codevector_perplexity"],
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            code_perplexity=quantized["code_perplexity"],
            prob_perplexity=quantized["prob_perplexity"],
            mask_time_indices=torch.zeros(B, T, dtype=torch.bool, device=features.device),
        )
        return self._outputs(output, return_dict)


class W2V2ForCTC(W2V2PreTrainedModel):
    """W2V2Model with a linear head over the characters; trained with CTC, blank = pad token."""

    _keys_to_ignore_on_load_unexpected = _PRETRAINING_ONLY

    def __init__(self, config: W2V2Config):
        super().__init__(config)
        if config.vocab_size is None:
            raise ValueError("W2V2Config.vocab_size=None: a CTC head needs a vocabulary size; set it to len(tokenizer).")
        self.wav2vec2 = W2V2Model(config)
        self.dropout = nn.Dropout(config.final_dropout)
        self.lm_head = nn.Linear(config.output_hidden_size, config.vocab_size)
        self.post_init()

    def freeze_feature_encoder(self):
        """Stop training f: X -> Z (the paper fine-tunes with the feature encoder frozen)."""
        self.wav2vec2.freeze_feature_encoder()

    def freeze_base_model(self):
        """Train only the CTC head."""
        self.wav2vec2.requires_grad_(False)

    def forward(self, input_values, attention_mask=None, labels=None, output_attentions=None, output_hidden_states=None, return_dict=None, **kwargs):
        """input_values: (B, S); labels: (B, U) character ids, padded with -100.

        Returns ``logits`` (B, T, vocab) and, with labels, the CTC loss (log-softmax and loss in
        fp32, reduction ``config.ctc_loss_reduction``, ``config.ctc_zero_infinity``).
        """
        cfg = self.config
        if labels is not None and labels.numel() and labels.max() >= cfg.vocab_size:
            raise ValueError(f"labels contain id {int(labels.max())} >= vocab_size={cfg.vocab_size}; build the model with vocab_size=len(tokenizer).")
        outputs = self.wav2vec2(input_values, attention_mask=attention_mask, output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.lm_head(self.dropout(outputs.last_hidden_state))  # (B, T, V)

        loss = None
        if labels is not None:
            samples = attention_mask.long().sum(-1) if attention_mask is not None else torch.full((input_values.shape[0],), input_values.shape[-1], device=input_values.device)
            input_lengths = self._get_feat_extract_output_lengths(samples).long()  # (B,)
            targets_mask = (labels >= 0) & (labels != cfg.pad_token_id)  # (B, U)
            self._warn_impossible_alignments(labels, input_lengths)
            log_probs = F.log_softmax(logits, dim=-1, dtype=torch.float32).transpose(0, 1)  # (T, B, V)
            with torch.backends.cudnn.flags(enabled=False):
                loss = F.ctc_loss(
                    log_probs,
                    labels.masked_select(targets_mask),
                    input_lengths,
                    targets_mask.sum(-1),
                    blank=cfg.pad_token_id,
                    reduction=cfg.ctc_loss_reduction,
                    zero_infinity=cfg.ctc_zero_infinity,
                )
        output = CausalLMOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions)
        return self._outputs(output, return_dict)

    def _warn_impossible_alignments(self, labels, input_lengths) -> None:
        """Count and warn about labels CTC cannot align: U tokens plus a blank between each
        repeated pair need more frames than the utterance has (their loss is then inf, or 0
        under ``ctc_zero_infinity``, silently). ``impossible_alignments`` counts them."""
        needed = ctc_frames_needed(labels, self.config.pad_token_id)  # (B,)
        impossible = int((needed > input_lengths).sum())
        if impossible:
            self.impossible_alignments = getattr(self, "impossible_alignments", 0) + impossible
            logger.warning(
                "%d of %d utterances in this batch need more frames than they have (up to %d label frames for %d audio "
                "frames): CTC cannot align them, their loss is %s; drop such utterances or check their transcripts "
                "(%d so far).", impossible, len(needed), int(needed.max()), int(input_lengths.min()),
                "counted as 0 (ctc_zero_infinity)" if self.config.ctc_zero_infinity else "inf", self.impossible_alignments,
            )  # fmt: skip


def from_transformers(model: PreTrainedModel, cls: type[W2V2PreTrainedModel] | None = None) -> W2V2PreTrainedModel:
    """The w2v2 model (of class ``cls``, default: the twin of ``model``'s class) with the config
    and weights of a transformers ``Wav2Vec2*`` model: ``cls.from_transformers(model)``."""
    twins = {c.__name__: c for c in (W2V2Model, W2V2ForPreTraining, W2V2ForCTC)}
    cls = cls or twins.get(OURS_OF.get(type(model).__name__))
    if cls is None:
        raise TypeError(f"from_transformers() takes a Wav2Vec2Model, Wav2Vec2ForPreTraining or Wav2Vec2ForCTC, not {type(model).__name__}.")
    return cls.from_transformers(model)
