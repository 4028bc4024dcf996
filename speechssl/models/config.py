"""Configuration of a wav2vec 2.0 model.

One flat, typed dataclass: field names follow fairseq's ``Wav2Vec2Config`` (``encoder_layers``,
``encoder_embed_dim``, ``latent_vars``, ...) so that users coming from fairseq recognise them, and a
fairseq or Hugging Face configuration maps onto it field by field (see ``speechssl.interop``). The defaults
are the BASE model of the paper (Baevski et al., 2020) as the reference implementation trains it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

EXTRACTOR_MODES = ("group_norm", "layer_norm")


@dataclass(frozen=True, kw_only=True)
class FrameGeometry:
    """Where a model's output frames sit on its input samples: what chunked transcription, feature dumps and
    minimum lengths need to know about the feature encoder (`Wav2Vec2Config.geometry`).

    Frame ``t`` sees samples ``[t * frame_stride, t * frame_stride + receptive_field)``. For a stack of
    unpadded convolutions (kernel k_i, stride s_i) layer-by-layer ``floor((L - k) / s) + 1`` composes exactly to
    ``floor((L - receptive_field) / frame_stride) + 1``, so these two numbers give every frame count.
    """

    frame_stride: int
    """Samples between the starts of two consecutive frames (the product of the conv strides)."""
    receptive_field: int
    """Samples one frame sees; shorter input gives no frame at all."""

    def num_frames(self, num_samples: int) -> int:
        """Frames the feature encoder gives for ``num_samples`` samples (0 below one receptive field)."""
        if num_samples < self.receptive_field:
            return 0
        return (int(num_samples) - self.receptive_field) // self.frame_stride + 1


@dataclass(kw_only=True)
class Wav2Vec2Config:
    """Every size and regularisation knob of wav2vec 2.0 (defaults: BASE)."""

    # ---------------------------------------------------------------- feature encoder (CNN)
    extractor_mode: str = "group_norm"
    """`group_norm`: GroupNorm on the first conv block only (BASE; fairseq `default`); `layer_norm`: LayerNorm
    after every block (LARGE)."""
    conv_dims: list[int] = field(default_factory=lambda: [512] * 7)
    """Output channels of each conv block."""
    conv_kernels: list[int] = field(default_factory=lambda: [10, 3, 3, 3, 3, 2, 2])
    """Kernel width of each conv block (samples, then frames)."""
    conv_strides: list[int] = field(default_factory=lambda: [5, 2, 2, 2, 2, 2, 2])
    """Stride of each conv block; the product (320) is the frame hop in samples."""
    conv_bias: bool = False
    """Bias in the conv blocks (True for LARGE)."""
    conv_smooth_init: float = 0.0
    """Share of a per-channel moving average in the initial weights of conv blocks 2..n (the rest kaiming-normal,
    fairseq's init, which 0 keeps exactly). A kaiming-random stack computes phase-dependent features: two
    neighbouring frames are about as different as any two frames of the utterance, so nothing about a masked
    frame can be predicted from its neighbours until the encoder has learned a lot. With 0.7 the stack starts as
    random filters -> rectification -> local averaging, band envelopes that change slowly from frame to frame,
    and small-scale pretraining learns from its first updates (egs/synthetic/README.md)."""
    feature_grad_mult: float = 0.1
    """Scale of the gradient reaching the feature encoder; 0 runs the encoder without gradient (fine-tuning)."""

    # ---------------------------------------------------------------- context network (Transformer)
    encoder_layers: int = 12
    """Number of Transformer layers."""
    encoder_embed_dim: int = 768
    """Model width D."""
    encoder_ffn_embed_dim: int = 3072
    """Inner width of the feed-forward blocks."""
    encoder_attention_heads: int = 12
    """Attention heads (the paper says 8 for BASE; the released code and checkpoints use 12)."""
    layer_norm_first: bool = False
    """Pre-LN layers with a final LayerNorm (LARGE) instead of post-LN with a LayerNorm before the stack."""
    conv_pos: int = 128
    """Kernel width of the convolutional relative positional embedding."""
    conv_pos_groups: int = 16
    """Groups of the positional convolution."""
    layer_norm_eps: float = 1e-5
    """Epsilon of every LayerNorm/GroupNorm."""

    # ---------------------------------------------------------------- dropouts
    dropout: float = 0.1
    """Dropout after attention and feed-forward blocks and on the Transformer input."""
    attention_dropout: float = 0.1
    """Dropout on attention probabilities."""
    activation_dropout: float = 0.0
    """Dropout after the feed-forward activation."""
    dropout_input: float = 0.1
    """Dropout on the projected features, before masking."""
    dropout_features: float = 0.1
    """Dropout on the unmasked features fed to the quantizer."""
    encoder_layerdrop: float = 0.05
    """Probability of skipping a whole Transformer layer in training."""
    final_dropout: float = 0.0
    """Dropout before the CTC head."""

    # ---------------------------------------------------------------- masking
    mask_prob: float = 0.65
    """Time masking: mask_prob * T / mask_length spans per utterance (fairseq semantics; the paper's per-frame
    start probability is mask_prob / mask_length). 0.65 with length 10 masks ~49 % of frames."""
    mask_length: int = 10
    """Length of a time mask span in frames."""
    mask_min_masks: int = 2
    """Minimum number of time mask spans per utterance (fairseq hard-codes 2)."""
    no_mask_overlap: bool = False
    """Place time spans so that they never overlap."""
    mask_min_space: int = 1
    """With no_mask_overlap, unmasked frames kept between spans."""
    require_same_masks: bool = True
    """Subsample so that every utterance of a batch has the same number of masked frames (fairseq)."""
    mask_channel_prob: float = 0.0
    """Channel-masking probability (fine-tuning), applied after time masking; channels are set to 0."""
    mask_channel_length: int = 64
    """Length of a channel mask span."""
    mask_channel_min_masks: int = 0
    """Minimum number of channel mask spans."""
    require_same_channel_masks: bool = False
    """Subsample channel masks so that every utterance of a batch has the batch's smallest count of masked
    channels. fairseq does this in fine-tuning (its channel masks keep compute_mask_indices' default), which
    masks fewer channels than mask_channel_prob suggests; every paper fine-tuning config sets it. False, the
    default, masks each utterance on its own as transformers does (and as the CPU recipes were tuned)."""

    # ---------------------------------------------------------------- quantizer and contrastive head
    final_dim: int = 256
    """Dimension of the space where context outputs and targets are compared (final_proj / project_q)."""
    latent_vars: int = 320
    """Codebook entries per group V."""
    latent_groups: int = 2
    """Codebook groups G."""
    latent_dim: int = 0
    """Concatenated codevector dimension before project_q; 0 means final_dim (fairseq)."""
    max_temp: float = 2.0
    """Initial Gumbel-softmax temperature."""
    min_temp: float = 0.5
    """Floor of the Gumbel-softmax temperature."""
    temp_decay: float = 0.999995
    """Temperature multiplier per update: max(max_temp * temp_decay**updates, min_temp)."""
    num_negatives: int = 100
    """Distractors K per masked step, drawn from the same utterance."""
    logit_temp: float = 0.1
    """Temperature dividing the cosine similarities."""
    diversity_weight: float = 0.1
    """Weight of the codebook diversity loss."""
    feature_pen_weight: float = 10.0
    """Weight of the L2 penalty on the feature-encoder output."""
    continuous_target_weight: float = 0.0
    """Weight of an auxiliary InfoNCE term over the same masked steps, predictions and distractors whose targets
    are the continuous (unquantized) features projected by `project_features` (the targets of fairseq's
    `quantize_targets=False`). 0, the paper's objective, leaves the model exactly wav2vec 2.0. At small scale the
    codes of a randomly initialised feature encoder cannot be predicted from context (neighbouring frames almost
    never share a code), so the paper's objective sits at chance for a long time; the continuous term gives the
    encoder a learnable signal from the first updates. The `small` CPU recipes use 1.0 (egs/synthetic)."""

    # ---------------------------------------------------------------- memory
    checkpoint_activations: bool = False
    """Recompute each Transformer layer's activations in the backward pass instead of keeping them (fairseq's
    `checkpoint_activations`; torch.utils.checkpoint): training memory for LARGE on 24-40 GB cards, at the cost
    of a second forward pass through the layers. The weights, the outputs and the gradients are the same
    (dropout masks are replayed from the saved random state); no effect in eval or without gradient."""

    # ---------------------------------------------------------------- metadata
    normalize: bool = False
    """Whether the model expects zero-mean unit-variance waveforms (LARGE checkpoints); the data pipeline
    applies it, the model does not."""

    # ---------------------------------------------------------------- derived sizes
    @property
    def codevector_dim(self) -> int:
        """Concatenated codevector size (latent_dim, or final_dim when latent_dim is 0)."""
        return self.latent_dim if self.latent_dim > 0 else self.final_dim

    @property
    def feature_dim(self) -> int:
        """Channels of the feature-encoder output."""
        return self.conv_dims[-1]

    @property
    def frame_stride(self) -> int:
        """Samples per output frame (320 for the standard encoder)."""
        stride = 1
        for s in self.conv_strides:
            stride *= s
        return stride

    @property
    def receptive_field(self) -> int:
        """Samples seen by one output frame (400 for the standard encoder)."""
        field_, jump = 1, 1
        for k, s in zip(self.conv_kernels, self.conv_strides):
            field_ += (k - 1) * jump
            jump *= s
        return field_

    @property
    def geometry(self) -> FrameGeometry:
        """The feature encoder's frame stride and receptive field: the one source of frame arithmetic."""
        return FrameGeometry(frame_stride=self.frame_stride, receptive_field=self.receptive_field)

    # ---------------------------------------------------------------- checks and (de)serialisation
    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent field."""
        if self.extractor_mode not in EXTRACTOR_MODES:
            raise ValueError(f"`extractor_mode` must be one of {EXTRACTOR_MODES}, got {self.extractor_mode!r}")
        n = len(self.conv_dims)
        if n == 0 or len(self.conv_kernels) != n or len(self.conv_strides) != n:
            raise ValueError(
                "`conv_dims`, `conv_kernels` and `conv_strides` must be non-empty and of equal length, got "
                f"{len(self.conv_dims)}, {len(self.conv_kernels)}, {len(self.conv_strides)}"
            )
        for name in ("conv_dims", "conv_kernels", "conv_strides"):
            if any(int(v) < 1 for v in getattr(self, name)):
                raise ValueError(f"`{name}` must hold positive integers, got {getattr(self, name)}")
        positive = ("encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_attention_heads",
                    "conv_pos", "conv_pos_groups", "mask_length", "mask_channel_length", "final_dim",
                    "latent_vars", "latent_groups", "num_negatives")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}")
        if self.encoder_embed_dim % self.encoder_attention_heads:
            raise ValueError(
                f"`encoder_embed_dim` ({self.encoder_embed_dim}) must be divisible by "
                f"`encoder_attention_heads` ({self.encoder_attention_heads})"
            )
        if self.encoder_embed_dim % self.conv_pos_groups:
            raise ValueError(
                f"`encoder_embed_dim` ({self.encoder_embed_dim}) must be divisible by `conv_pos_groups` "
                f"({self.conv_pos_groups})"
            )
        if self.latent_dim < 0 or self.codevector_dim % self.latent_groups:
            raise ValueError(
                f"`latent_dim` (or final_dim when 0) = {self.codevector_dim} must be >= 0 and divisible by "
                f"`latent_groups` ({self.latent_groups})"
            )
        for name in ("dropout", "attention_dropout", "activation_dropout", "dropout_input", "dropout_features",
                     "encoder_layerdrop", "final_dropout", "mask_prob", "mask_channel_prob"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), got {value}")
        if not 0.0 <= self.conv_smooth_init <= 1.0:
            raise ValueError(f"`conv_smooth_init` must be in [0, 1], got {self.conv_smooth_init}")
        if self.feature_grad_mult < 0:
            raise ValueError(f"`feature_grad_mult` must be >= 0, got {self.feature_grad_mult}")
        if self.mask_min_masks < 0 or self.mask_channel_min_masks < 0 or self.mask_min_space < 0:
            raise ValueError("`mask_min_masks`, `mask_channel_min_masks` and `mask_min_space` must be >= 0")
        if not 0 < self.min_temp <= self.max_temp:
            raise ValueError(f"need 0 < `min_temp` <= `max_temp`, got {self.min_temp} and {self.max_temp}")
        if not 0 < self.temp_decay <= 1:
            raise ValueError(f"`temp_decay` must be in (0, 1], got {self.temp_decay}")
        if self.continuous_target_weight < 0:
            raise ValueError(f"`continuous_target_weight` must be >= 0, got {self.continuous_target_weight}")
        if self.logit_temp <= 0:
            raise ValueError(f"`logit_temp` must be > 0, got {self.logit_temp}")
        if not isinstance(self.checkpoint_activations, bool):  # a checkpoint's or a converter's "true" string
            raise ValueError(  # noqa: TRY004 (validate() raises ValueError, as its callers expect)
                f"`checkpoint_activations` must be a bool, got {self.checkpoint_activations!r}")
        if self.layer_norm_eps <= 0:
            raise ValueError(f"`layer_norm_eps` must be > 0, got {self.layer_norm_eps}")

    def replace(self, **changes: Any) -> Wav2Vec2Config:
        """A validated copy with some fields changed (unknown names raise)."""
        return self.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (what a speechssl checkpoint stores as `model_config`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Wav2Vec2Config:
        """Build and validate from a plain dict; unknown keys raise ValueError naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown Wav2Vec2Config fields {unknown}; expected some of {sorted(known)}")
        values = dict(values)
        for name in ("conv_dims", "conv_kernels", "conv_strides"):
            if name in values:
                values[name] = [int(v) for v in values[name]]
        cfg = cls(**values)
        cfg.validate()
        return cfg
