"""Building blocks of wav2vec 2.0, each taking explicit arguments (only the models read a config).

    f: X -> Z   FeatureEncoder (temporal convolutions over the raw waveform)
    g: Z -> C   FeatureProjection + Encoder (Transformer with a convolutional relative
                positional embedding); optionally inside a Squeeze (SEW: the Transformer at
                1/s of the frame rate)
    Z -> Q      GumbelVectorQuantizer (G codebooks of V entries, product quantization)

Module and parameter names follow transformers' ``Wav2Vec2*`` classes so that state dicts
copy one to one. Shapes: B batch, T frames, S samples, C channels/features, H heads.
"""

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer

__all__ = [
    "grad_multiply",
    "ConvLayer",
    "FeatureEncoder",
    "FeatureProjection",
    "PositionalConvEmbedding",
    "SelfAttention",
    "FeedForward",
    "EncoderLayer",
    "Encoder",
    "Squeeze",
    "GumbelVectorQuantizer",
    "KmeansVectorQuantizer",
    "perplexity",
]


class _GradMultiply(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by ``scale`` (fairseq's GradMultiply)."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def grad_multiply(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Scale the gradient flowing back through ``x`` by ``scale`` (no-op when scale == 1)."""
    return x if scale == 1.0 else _GradMultiply.apply(x, scale)


# ----------------------------------------------------------------------------- f: X -> Z
def _time_blocks(x: torch.Tensor, stride: int, blocks: int) -> torch.Tensor:
    """x: (B, S, C_in) -> its first ``blocks`` blocks of ``stride`` samples, (B, blocks, stride * C_in),
    a view when x is contiguous within each utterance."""
    return x[:, : blocks * stride].reshape(x.shape[0], blocks, stride * x.shape[2])


class _ShiftedBlockConv(torch.autograd.Function):
    """A strided Conv1d whose kernel is r >= 2 blocks of ``stride`` samples, as r matrix products
    per utterance on shifted views of the input, accumulated in place (forward and backward).

    With x seen as blocks X (B, S / stride, D = stride * C_in) and the weight as r slices W_j
    (D, C_out): y[b, t] = bias + sum_j X[b, t + j] @ W_j. Every X[b, j : j + L] is a contiguous
    (L, D) matrix, so nothing is copied: no im2col rows, no concatenation, and none of the
    zero-filled slice gradients autograd would build for them (the small recipe's 32 -> 128 k8 s4
    and 128 -> 128 k4 s2 layers, forward + backward on one thread: 37.9 -> 32.7 and 35.3 -> 31.0 ms
    against the im2col product; benchmarks/RESULTS.md).
    """

    @staticmethod
    def forward(ctx, x, w, bias, stride: int, frames: int):
        # x: (B, S, C_in) contiguous within each utterance; w: (r * D, C_out) -> (B, L, C_out)
        batch, _, c_in = x.shape
        d = stride * c_in
        r = w.shape[0] // d
        blocks = _time_blocks(x, stride, frames + r - 1)
        y = x.new_empty(batch, frames, w.shape[1])
        for b in range(batch):
            if bias is None:
                torch.mm(blocks[b, :frames], w[:d], out=y[b])
            else:
                torch.addmm(bias, blocks[b, :frames], w[:d], out=y[b])
            for j in range(1, r):
                y[b].addmm_(blocks[b, j : j + frames], w[j * d : (j + 1) * d])
        ctx.save_for_backward(x, w)
        ctx.stride, ctx.frames, ctx.has_bias = stride, frames, bias is not None
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, w = ctx.saved_tensors
        stride, frames = ctx.stride, ctx.frames
        batch, _, c_in = x.shape
        d = stride * c_in
        r = w.shape[0] // d
        grad_y = grad_y.contiguous()
        blocks = _time_blocks(x, stride, frames + r - 1)
        grad_x = grad_w = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = x.new_empty(x.shape)  # contiguous, as the block view below needs
            grad_x[:, frames * stride :].zero_()  # samples only the later blocks (or no frame) read
            grad_blocks = _time_blocks(grad_x, stride, frames + r - 1)  # a view: written in place below
            for b in range(batch):
                torch.mm(grad_y[b], w[:d].t(), out=grad_blocks[b, :frames])
                for j in range(1, r):
                    grad_blocks[b, j : j + frames].addmm_(grad_y[b], w[j * d : (j + 1) * d].t())
        if ctx.needs_input_grad[1]:
            grad_w = torch.zeros_like(w)
            for j in range(r):
                for b in range(batch):
                    grad_w[j * d : (j + 1) * d].addmm_(blocks[b, j : j + frames].t(), grad_y[b])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_y.sum((0, 1))
        return grad_x, grad_w, grad_bias, None, None


def conv1d_time_major(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int) -> torch.Tensor:
    """A Conv1d (no padding, no groups) on time-major input, as matrix products.

    x: (B, S, C_in); weight: (C_out, C_in, k), an ``nn.Conv1d``'s -> (B, L, C_out), contiguous,
    L = (S - k) // stride + 1. Output frame t reads samples t*stride .. t*stride + k - 1, a
    (k * C_in) row, times the weight seen as (k * C_in, C_out). When k is r >= 2 times the stride
    and a block of ``stride`` samples is wide (stride * C_in >= 64: the small recipe's second and
    third layers), the products run on shifted views of the input (:class:`_ShiftedBlockConv`);
    otherwise the rows are built (im2col: r consecutive blocks concatenated, or an unfold) and
    multiplied once.

    Why not the convolution kernel: on CPU its backward pass ran 3-6x slower than its forward,
    while a matmul's backward is two matmuls (measured on the small recipe's 32->128 k8 s4 and
    128->128 k4 s2 layers, forward + backward: 50 -> 32 ms and 34 -> 23 ms; benchmarks/RESULTS.md).
    """
    batch, samples, c_in = x.shape
    c_out, _, k = weight.shape
    frames = (samples - k) // stride + 1
    w = weight.permute(2, 1, 0).reshape(k * c_in, c_out)  # row j * C_in + c holds W[:, c, j]
    if k % stride == 0 and k > stride and stride * c_in >= 64:
        device = x.device.type
        if torch.is_autocast_enabled(device):  # the Function's products run in the autocast dtype
            dtype = torch.get_autocast_dtype(device)
            x, w, bias = x.to(dtype), w.to(dtype), None if bias is None else bias.to(dtype)
        with torch.autocast(device, enabled=False):
            return _ShiftedBlockConv.apply(x.contiguous(), w, bias, stride, frames)
    if k % stride == 0:
        r = k // stride
        blocks = _time_blocks(x, stride, frames + r - 1)
        cols = blocks if r == 1 else torch.cat([blocks[:, q : q + frames] for q in range(r)], dim=-1)  # (B, L, k C_in)
    else:
        cols = x.unfold(1, k, stride).transpose(2, 3)  # (B, L, k, C_in), a view
    cols = cols.reshape(batch * frames, k * c_in)
    y = cols @ w if bias is None else torch.addmm(bias, cols, w)
    return y.view(batch, frames, c_out)


class ConvLayer(GradientCheckpointingLayer):
    """One block of the feature encoder: Conv1d -> optional norm -> activation.

    ``norm`` is "group" (GroupNorm with one group per channel, BASE's first layer), "layer"
    (LayerNorm over channels, every layer of LARGE) or None.

    With ``norm="layer"`` the layer runs time-major, (B, S, C): the convolution as one matrix
    product (:func:`conv1d_time_major`), then the LayerNorm over channels, which are adjacent in
    that layout, so no transpose copy is needed (Conv1d's (B, C, T) layout costs two copies per
    layer and slows the elementwise ops after them: 2x on the small recipe's encoder, forward +
    backward).
    Without a channel norm (BASE), Conv1d's own layout is the faster one (measured: 1.4x on
    BASE's 512 -> 512 layers) and is kept. The parameters are an ``nn.Conv1d``'s either way.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, *, bias: bool, norm: str | None, activation: str):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size=kernel, stride=stride, bias=bias)
        self.norm = norm
        if norm == "group":
            self.layer_norm = nn.GroupNorm(num_groups=out_channels, num_channels=out_channels, affine=True)
        elif norm == "layer":
            self.layer_norm = nn.LayerNorm(out_channels, elementwise_affine=True)
        elif norm is not None:
            raise ValueError(f"norm={norm!r} is not one of 'group', 'layer', None.")
        self.activation = ACT2FN[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C_in, S), any memory layout -> (B, C_out, S'); with ``norm="layer"`` stored
        time-major (``y.transpose(1, 2)`` is contiguous)."""
        if self.norm == "layer" and not torch.compiler.is_compiling():
            y = conv1d_time_major(x.transpose(1, 2).contiguous(), self.conv.weight, self.conv.bias, self.conv.stride[0])
            y = self.layer_norm(y)  # (B, S', C_out): over the channels, adjacent in memory
            return self.activation(y).transpose(1, 2)
        # Conv1d's layout; also under torch.compile, whose inductor picks layouts itself (and
        # cannot yet reason about time-major strides with dynamic lengths).
        y = self.conv(x)
        if self.norm == "layer":
            y = self.layer_norm(y.transpose(1, 2)).transpose(1, 2)
        elif self.norm == "group":
            y = self.layer_norm(y)
        return self.activation(y)


class FeatureEncoder(nn.Module):
    """f: X -> Z, a stack of temporal convolutions (paper: 7 blocks, 512 channels, strides
    (5,2,2,2,2,2,2), kernels (10,3,3,3,3,2,2): one 512-d frame every 20 ms, 25 ms receptive field).

    ``norm_mode`` "group" normalises only the first block (BASE); "layer" normalises every block (LARGE).
    """

    def __init__(self, conv_dim, conv_kernel, conv_stride, *, bias: bool, norm_mode: str, activation: str):
        super().__init__()
        if not len(conv_dim) == len(conv_kernel) == len(conv_stride):
            raise ValueError(
                f"conv_dim, conv_kernel and conv_stride need one entry per layer; got lengths "
                f"{len(conv_dim)}, {len(conv_kernel)}, {len(conv_stride)}."
            )
        layers = []
        in_channels = 1
        for i, (channels, kernel, stride) in enumerate(zip(conv_dim, conv_kernel, conv_stride)):
            norm = "layer" if norm_mode == "layer" else ("group" if i == 0 else None)
            layers.append(ConvLayer(in_channels, channels, kernel, stride, bias=bias, norm=norm, activation=activation))
            in_channels = channels
        self.conv_layers = nn.ModuleList(layers)

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        """input_values: (B, S) -> z: (B, C, T), as transformers returns it (for layer-norm
        encoders stored time-major: ``z.transpose(1, 2)``, what the model reads next, is contiguous).

        Activation checkpointing is transformers' (each ConvLayer is a GradientCheckpointingLayer,
        switched on by ``activation_checkpointing_enable``, formerly ``gradient_checkpointing_enable``). When nothing here needs a gradient
        (frozen f, input without grad) the stack runs without autograd, so a checkpoint never
        wraps a graph-free call (reentrant checkpoints warn there and would drop the gradient).
        """
        x = input_values[:, None, :]  # (B, 1, S)
        needs_grad = x.requires_grad or any(p.requires_grad for p in self.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and needs_grad):
            if torch.is_grad_enabled() and not x.requires_grad and any(layer.gradient_checkpointing for layer in self.conv_layers):
                x = x.detach().requires_grad_()  # a reentrant checkpoint only backpropagates through inputs with grad
            for layer in self.conv_layers:
                x = layer(x)
        return x


class FeatureProjection(nn.Module):
    """LayerNorm on z (kept for the quantizer) then a linear map to the Transformer width."""

    def __init__(self, in_dim: int, hidden_size: int, *, eps: float, dropout: float):
        super().__init__()
        self.layer_norm = nn.LayerNorm(in_dim, eps=eps)
        self.projection = nn.Linear(in_dim, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z: (B, T, C) -> (projected (B, T, D), normalised z (B, T, C))."""
        z_norm = self.layer_norm(z)
        return self.dropout(self.projection(z_norm)), z_norm


# ----------------------------------------------------------------------------- g: Z -> C
class PositionalConvEmbedding(nn.Module):
    """Relative positional embedding: a weight-normalised grouped convolution over time
    (paper: kernel 128, 16 groups), followed by GELU. An even kernel yields one frame too many,
    which is dropped so the output keeps T frames."""

    def __init__(self, hidden_size: int, kernel: int, groups: int, *, activation: str):
        super().__init__()
        conv = nn.Conv1d(hidden_size, hidden_size, kernel_size=kernel, padding=kernel // 2, groups=groups)
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.remove = 1 if kernel % 2 == 0 else 0
        self.activation = ACT2FN[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, D) -> (B, T, D).

        Runs as a (1 x kernel) 2-d convolution on ``x`` seen as (B, D, 1, T) channels-last,
        which is ``x``'s own memory: no transpose copy in or out (2x faster than Conv1d on
        (B, D, T) for the small recipe, forward + backward)."""
        conv = self.conv
        if torch.compiler.is_compiling():  # inductor picks the layout (see ConvLayer.forward)
            y = conv(x.transpose(1, 2)).transpose(1, 2)  # (B, T + remove, D)
        else:
            weight = conv.weight.unsqueeze(2)  # (D, D / groups, 1, kernel), from the weight norm g * v / ||v||
            y = F.conv2d(x.transpose(1, 2).unsqueeze(2), weight, conv.bias, padding=(0, conv.padding[0]), groups=conv.groups)
            y = y.squeeze(2).transpose(1, 2)  # (B, T + remove, D)
        if self.remove:
            y = y[:, : -self.remove]
        return self.activation(y)


class SelfAttention(nn.Module):
    """Multi-head self-attention through ``scaled_dot_product_attention``; the explicit path
    (softmax(QK^T / sqrt(d)) V) runs only when attention weights are asked for."""

    def __init__(self, embed_dim: int, num_heads: int, *, dropout: float):
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}.")
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None, need_weights: bool = False):
        """x: (B, T, D); key_padding_mask: (B, T) bool, True on real frames.

        Returns (B, T, D) and, if ``need_weights``, the attention weights (B, H, T, T).
        """
        B, T, D = x.shape
        projections = (self.q_proj, self.k_proj, self.v_proj)
        if all(type(p) is nn.Linear for p in projections):
            # Q, K and V from one product with the three weights stacked (3D, D): one wide matmul
            # forward and backward instead of three narrow ones (2% of the small recipe's step).
            weight = torch.cat([p.weight for p in projections])
            bias = torch.cat([p.bias for p in projections])
            qkv = F.linear(x, weight, bias).view(B, T, 3, self.num_heads, self.head_dim)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, T, hd)
        else:  # replaced layers (dynamic int8 quantization) run one by one
            q, k, v = (p(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2) for p in projections)
        mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]  # (B, 1, 1, T)
        dropout = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = q @ k.transpose(-2, -1) * self.head_dim**-0.5  # (B, H, T, T)
            if mask is not None:
                scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
            weights = scores.softmax(-1)
            out = F.dropout(weights, p=dropout, training=self.training) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        out = out.transpose(1, 2).reshape(B, T, D)  # (B, T, H * hd)
        return self.out_proj(out), weights


class FeedForward(nn.Module):
    def __init__(self, hidden_size: int, intermediate_size: int, *, activation: str, activation_dropout: float, dropout: float):
        super().__init__()
        self.intermediate_dense = nn.Linear(hidden_size, intermediate_size)
        self.intermediate_act_fn = ACT2FN[activation]
        self.intermediate_dropout = nn.Dropout(activation_dropout)
        self.output_dense = nn.Linear(intermediate_size, hidden_size)
        self.output_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.intermediate_dropout(self.intermediate_act_fn(self.intermediate_dense(x)))
        return self.output_dropout(self.output_dense(x))


class EncoderLayer(GradientCheckpointingLayer):
    """One Transformer block. ``layer_norm_first=False`` is BASE's post-LN order
    (x = LN(x + Attn(x)); x = LN'(x + FFN(x))); True is LARGE's pre-LN order
    (x = x + Attn(LN(x)); x = x + FFN(LN'(x)))."""

    def __init__(self, hidden_size, num_heads, intermediate_size, *, activation, dropout, attention_dropout, activation_dropout, eps, layer_norm_first: bool):
        super().__init__()
        self.layer_norm_first = layer_norm_first
        self.attention = SelfAttention(hidden_size, num_heads, dropout=attention_dropout)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.feed_forward = FeedForward(hidden_size, intermediate_size, activation=activation, activation_dropout=activation_dropout, dropout=dropout)
        self.final_layer_norm = nn.LayerNorm(hidden_size, eps=eps)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None, need_weights: bool = False):
        """x: (B, T, D) -> ((B, T, D), weights or None)."""
        residual = x
        if self.layer_norm_first:
            x, weights = self.attention(self.layer_norm(x), key_padding_mask, need_weights)
            x = residual + self.dropout(x)
            x = x + self.feed_forward(self.final_layer_norm(x))
        else:
            x, weights = self.attention(x, key_padding_mask, need_weights)
            x = self.layer_norm(residual + self.dropout(x))
            x = self.final_layer_norm(x + self.feed_forward(x))
        return x, weights


class Encoder(nn.Module):
    """g: Z -> C. Adds the convolutional positional embedding, then runs the layers.

    Post-LN (BASE) normalises the input of the first layer; pre-LN (LARGE) normalises the
    output of the last. LayerDrop skips a layer with probability ``layerdrop`` in training;
    a skipped layer still joins the autograd graph with a zero-weighted term, so every
    parameter gets a (zero) gradient and DistributedDataParallel needs no
    ``find_unused_parameters`` (transformers#30113).
    """

    def __init__(self, hidden_size, num_layers, num_heads, intermediate_size, *, activation, dropout, attention_dropout, activation_dropout, eps, layer_norm_first, layerdrop, pos_conv_kernel, pos_conv_groups, pos_conv_activation):
        super().__init__()
        self.layer_norm_first = layer_norm_first
        self.layerdrop = layerdrop
        self.pos_conv_embed = PositionalConvEmbedding(hidden_size, pos_conv_kernel, pos_conv_groups, activation=pos_conv_activation)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(hidden_size, num_heads, intermediate_size, activation=activation, dropout=dropout, attention_dropout=attention_dropout, activation_dropout=activation_dropout, eps=eps, layer_norm_first=layer_norm_first)
            for _ in range(num_layers)
        )

    def forward(self, x, key_padding_mask=None, *, output_hidden_states=False, output_attentions=False):
        """x: (B, T, D); key_padding_mask: (B, T) bool, True on real frames.

        Returns (last hidden state (B, T, D), hidden states or None, attentions or None). The
        hidden states are the input of the first layer followed by each layer's output (before
        the final LayerNorm of pre-LN models), as transformers returns them.
        """
        if key_padding_mask is not None:
            x = x.masked_fill(~key_padding_mask[..., None], 0.0)  # padded frames enter as 0
        x = x + self.pos_conv_embed(x)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        x = self.dropout(x)

        hidden_states = [x] if output_hidden_states else None
        attentions = [] if output_attentions else None
        for layer in self.layers:
            if self.training and self.layerdrop > 0 and torch.rand(()) < self.layerdrop:
                x = x + 0.0 * sum(p.sum() for p in layer.parameters() if p.requires_grad)
                continue
            x, weights = layer(x, key_padding_mask, output_attentions)  # positional: checkpointing needs it
            if output_hidden_states:
                hidden_states.append(x)
            if output_attentions:
                attentions.append(weights)
        if self.layer_norm_first:
            x = self.layer_norm(x)
        return x, (tuple(hidden_states) if output_hidden_states else None), (tuple(attentions) if output_attentions else None)


class Squeeze(nn.Module):
    """SEW's squeeze (Wu et al., arXiv 2109.06870): the Transformer runs at 1/s of f's frame rate.

    ``pool`` averages each s consecutive frames (padded frames left out of the mean) before g;
    ``unpool`` maps every frame of C back to s frames with one linear layer D -> s * D, so that
    the objective and the CTC head read T frames as without it. SEW also strides its positional
    convolution by s over the full-rate input; here the unchanged Encoder runs on the pooled
    frames, its positional convolution included, which covers s times the span in time.
    """

    def __init__(self, hidden_size: int, factor: int):
        super().__init__()
        self.factor = factor
        self.upsample = nn.Linear(hidden_size, factor * hidden_size)

    def pool(self, x: torch.Tensor, frame_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, T, D), frame_mask: (B, T) bool (True on real frames) or None ->
        (pooled (B, ceil(T / s), D), its frame mask or None)."""
        B, T, D = x.shape
        s = self.factor
        extra = -T % s  # frames added at the end so that T divides into groups of s
        real = torch.ones(B, T, dtype=x.dtype, device=x.device) if frame_mask is None else frame_mask.to(x.dtype)
        x = F.pad(x * real[..., None], (0, 0, 0, extra)).view(B, -1, s, D)
        counts = F.pad(real, (0, extra)).view(B, -1, s).sum(2)  # (B, T') real frames in each group
        pooled = x.sum(2) / counts.clamp(min=1)[..., None]  # mean over the real frames of each group
        return pooled, None if frame_mask is None else counts > 0

    def unpool(self, c: torch.Tensor, frames: int) -> torch.Tensor:
        """c: (B, T', D) -> (B, frames, D): each pooled frame becomes s frames, the tail cut to ``frames``."""
        B, pooled, D = c.shape
        return self.upsample(c).view(B, pooled * self.factor, D)[:, :frames]


# ----------------------------------------------------------------------------- Z -> Q
def perplexity(probs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Sum over groups of exp(entropy of the code distribution averaged over frames).

    probs: (N, G, V) per-frame distributions (one-hot for code perplexity, softmax for prob
    perplexity); mask: (N,) bool, the frames to average over. Ranges from G (one code per
    group) to G * V (uniform use of every code).
    """
    if mask is not None:
        mask = mask.reshape(-1).to(probs.dtype)  # (N,)
        marginal = (probs * mask[:, None, None]).sum(0) / mask.sum().clamp(min=1)  # (G, V)
    else:
        marginal = probs.mean(0)
    return torch.exp(-torch.xlogy(marginal, marginal).sum(-1)).sum()


class GumbelVectorQuantizer(nn.Module):
    """Z -> Q: product quantization with G codebooks of V entries (paper: G=2, V=320).

    Each frame picks one entry per group: in training through a straight-through
    Gumbel-softmax at temperature tau (hard one-hot forward, soft gradient), in eval by argmax.
    The chosen entries (each ``dim / G`` wide) are concatenated.
    """

    def __init__(self, in_dim: int, num_groups: int, num_vars: int, dim: int, *, temperature: float):
        super().__init__()
        if dim % num_groups != 0:
            raise ValueError(f"codevector dim={dim} is not divisible by num_groups={num_groups}.")
        self.num_groups = num_groups
        self.num_vars = num_vars
        self.temperature = float(temperature)
        self.codevectors = nn.Parameter(torch.empty(1, num_groups * num_vars, dim // num_groups))
        self.weight_proj = nn.Linear(in_dim, num_groups * num_vars)

    def _logits(self, z: torch.Tensor) -> torch.Tensor:
        """z: (..., C) -> the (N, G, V) logits of every frame's choice, fp32."""
        return self.weight_proj(z).reshape(-1, self.num_groups, self.num_vars).float()

    def codes(self, z: torch.Tensor) -> torch.Tensor:
        """z: (..., C) -> (..., G) int64: the entry each frame picks in every group without
        Gumbel noise (the argmax of the logits, eval's choice), in training mode too."""
        return self._logits(z).argmax(-1).view(*z.shape[:-1], self.num_groups)

    def forward(self, z: torch.Tensor, mask: torch.Tensor | None = None):
        """z: (..., C), e.g. (B, T, C) or the (N, C) frames the loss needs; mask: z's leading
        shape, bool, the frames whose code use is measured (all when None).

        Returns a dict with ``q`` (..., dim), ``codes`` (..., G) the chosen entry of each group,
        ``code_perplexity`` (hard choices), ``prob_perplexity`` (softmax of the logits, no noise:
        the paper's p̄_g for L_d) and ``codevector_perplexity`` (transformers' field: prob
        perplexity in training, code perplexity in eval).
        """
        lead = z.shape[:-1]
        logits = self._logits(z)  # (N, G, V)
        hard = F.one_hot(logits.argmax(-1), self.num_vars).to(logits.dtype)  # (N, G, V)
        if self.training:
            choice = F.gumbel_softmax(logits, tau=self.temperature, hard=True)  # (N, G, V)
        else:
            choice = hard
        code_ppl = perplexity(hard, mask)
        prob_ppl = perplexity(logits.softmax(-1), mask)
        # (N, G, V) x (G, V, dim/G) -> (N, G, dim/G): one batched matmul per group
        codebook = self.codevectors.view(self.num_groups, self.num_vars, -1)
        q = torch.einsum("ngv,gvd->ngd", choice.to(codebook.dtype), codebook).reshape(*lead, -1)
        return {
            "q": q,
            "codes": choice.argmax(-1).view(*lead, self.num_groups),
            "code_perplexity": code_ppl,
            "prob_perplexity": prob_ppl,
            "codevector_perplexity": prob_ppl if self.training else code_ppl,
        }


class KmeansVectorQuantizer(nn.Module):
    """Z -> Q with vq-wav2vec's k-means quantizer (arXiv 1910.05453, sec. 3.2): G codebooks of
    V entries; each frame takes, in every group, the entry nearest (Euclidean) to its projection.

    z_e = GroupNorm(grouped linear map of z) (fairseq's grouped 1x1 convolution and fp32 group
    norm over each group's channels and the utterance's frames); z_q = the nearest entries. The
    forward value is z_q, its gradient goes to z_e unchanged (straight-through), and the
    codebook is learnt by ``kmeans_loss`` = ||sg(z_e) - z_q||^2 + gamma ||z_e - sg(z_q)||^2
    (means over every element; gamma = 0.25 as in vq-wav2vec and fairseq).

    Because the group norm reads whole utterances, it takes (B, T, C) and quantizes every frame.
    """

    def __init__(self, in_dim: int, num_groups: int, num_vars: int, dim: int, *, gamma: float):
        super().__init__()
        for name, value in (("input dim (conv_dim[-1])", in_dim), ("codevector dim", dim)):
            if value % num_groups != 0:
                raise ValueError(f"{name}={value} is not divisible by num_groups={num_groups}.")
        self.num_groups = num_groups
        self.num_vars = num_vars
        self.gamma = float(gamma)
        self.weight = nn.Parameter(torch.empty(num_groups, in_dim // num_groups, dim // num_groups))  # (G, C/G, d)
        self.norm = nn.GroupNorm(num_groups, dim, affine=True)
        self.codevectors = nn.Parameter(torch.empty(num_vars, num_groups, dim // num_groups))  # (V, G, d)

    def _project(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, T, C) -> z_e: (B, T, G, d), fp32."""
        B, T, _ = z.shape
        ze = torch.einsum("btgc,gcd->btgd", z.float().view(B, T, self.num_groups, -1), self.weight.float())
        # over (d, T) per group and utterance, in fp32 with fp32 affine parameters (fairseq's
        # Fp32GroupNorm), so that a half-precision model runs too
        norm = self.norm
        ze = ze.reshape(B, T, -1).transpose(1, 2)  # (B, G * d, T)
        ze = F.group_norm(ze, norm.num_groups, norm.weight.float(), norm.bias.float(), norm.eps).transpose(1, 2)
        return ze.reshape(B, T, self.num_groups, -1)

    def _nearest(self, ze: torch.Tensor) -> torch.Tensor:
        """z_e (B, T, G, d) -> (B, T, G) index of the nearest entry of each group's codebook."""
        codebook = self.codevectors.float()  # (V, G, d)
        # ||z_e - e||^2 = ||z_e||^2 - 2 z_e . e + ||e||^2; the first term does not change the argmin
        dots = torch.einsum("btgd,vgd->btgv", ze, codebook)
        return (codebook.pow(2).sum(-1).t() - 2 * dots).argmin(-1)

    def codes(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, T, C) -> (B, T, G) int64, the nearest entries."""
        return self._nearest(self._project(z))

    def forward(self, z: torch.Tensor, mask: torch.Tensor | None = None):
        """z: (B, T, C); mask: (B, T) bool, the frames whose code use is measured (all when None).

        Returns the keys of :class:`GumbelVectorQuantizer` (``prob_perplexity`` and
        ``codevector_perplexity`` are the code perplexity: there is no softmax) and ``kmeans_loss``.
        """
        B, T, _ = z.shape
        ze = self._project(z)  # (B, T, G, d)
        codes = self._nearest(ze)  # (B, T, G)
        zq = self.codevectors.float()[codes, torch.arange(self.num_groups, device=z.device)]  # (B, T, G, d)
        q = ze + (zq - ze).detach()  # value z_q, gradient to z_e
        kmeans_loss = F.mse_loss(zq, ze.detach()) + self.gamma * F.mse_loss(ze, zq.detach())
        hard = F.one_hot(codes.reshape(-1, self.num_groups), self.num_vars).float()  # (B*T, G, V)
        code_ppl = perplexity(hard, None if mask is None else mask.reshape(-1))
        return {
            "q": q.reshape(B, T, -1).to(z.dtype),
            "codes": codes,
            "code_perplexity": code_ppl,
            "prob_perplexity": code_ppl,
            "codevector_perplexity": code_ppl,
            "kmeans_loss": kmeans_loss,
        }
