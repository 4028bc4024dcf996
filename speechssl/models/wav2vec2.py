"""wav2vec 2.0: the shared encoder, the pretraining model and the CTC model.

The encoder reads as its steps: `extract_features` (feature encoder CNN -> LayerNorm) -> projection to D ->
`mask` (time, then channel masking) -> context network. `Wav2Vec2ForPreTraining` adds the quantizer, the two projections to final_dim
and the contrastive objective; `Wav2Vec2ForCTC` adds dropout and a linear head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from speechssl.models.config import Wav2Vec2Config
from speechssl.models.context import ContextNetwork, Dropout
from speechssl.models.feature_encoder import FeatureEncoder, GradMultiply, WaveformStatistics
from speechssl.models.losses import infonce_loss, num_correct, pretraining_loss, sampled_contrastive_logits
from speechssl.models.masking import compute_channel_mask, compute_mask_indices, sample_distractors
from speechssl.models.quantizer import GumbelVectorQuantizer


@torch.no_grad()
def smooth_conv_init_(feature_encoder: FeatureEncoder, share: float) -> None:
    """Mix a per-channel moving average into the weights of conv blocks 2..n: w = share * avg + (1 - share) * w,
    where avg[c, c, :] = 1 / kernel (channel c averages itself over the kernel; other channels 0). Block 1 (the
    filters on the waveform) keeps its random init. See `Wav2Vec2Config.conv_smooth_init`."""
    if share <= 0:
        return
    for block in list(feature_encoder.blocks)[1:]:
        weight = block.conv.weight  # (C_out, C_in, k)
        out_channels, in_channels, kernel = weight.shape
        average = torch.zeros_like(weight)
        diagonal = torch.arange(min(out_channels, in_channels))
        average[diagonal, diagonal, :] = 1.0 / kernel
        weight.mul_(1.0 - share).add_(share * average)


def _numpy_rng() -> np.random.Generator:
    """A numpy generator seeded from torch's global RNG, so `torch.manual_seed` makes masks reproducible."""
    return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))


@dataclass
class FeatureExtractorOutput:
    """Output of `Wav2Vec2Encoder.extract_features`: the CNN's frames, normalised, before projection."""

    features: torch.Tensor
    """(B, T, C) LayerNorm'ed CNN features."""
    padding_mask: torch.Tensor | None
    """(B, T) True at padded frames, or None when nothing is padded."""
    lengths: torch.Tensor
    """(B,) valid frames per utterance."""
    feature_penalty: torch.Tensor
    """Scalar fp32 mean of the squared CNN output over valid frames (before the LayerNorm)."""
    host_lengths: torch.Tensor | None = None
    """(B,) `lengths` on the host (CPU), or None when nothing is padded (every row has T frames)."""


@dataclass
class EncoderOutput:
    """Output of `Wav2Vec2Encoder`."""

    last_hidden_state: torch.Tensor
    """(B, T, D) context representations."""
    features: torch.Tensor
    """(B, T, C) normalised, unmasked CNN features (after dropout_features): the quantizer's input."""
    padding_mask: torch.Tensor | None
    """(B, T) True at padded frames, or None when nothing is padded."""
    lengths: torch.Tensor
    """(B,) valid frames per utterance."""
    mask_indices: torch.Tensor | None
    """(B, T) True at time-masked frames, or None when no mask was applied."""
    feature_penalty: torch.Tensor
    """Scalar fp32 mean of the squared CNN output over valid frames (before the LayerNorm)."""
    hidden_states: list[torch.Tensor] | None = None
    """Per-layer states when requested (see `ContextOutput.hidden_states`)."""
    host_lengths: torch.Tensor | None = None
    """(B,) `lengths` on the host (CPU), or None when nothing is padded (every row has T frames)."""
    host_mask_indices: torch.Tensor | None = None
    """`mask_indices` on the host (CPU): what the pretraining head selects and draws distractors from
    without reading the device back."""


def _to_device(host: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor copied to `device` without waiting for the device's queue: a blocking host-to-GPU copy
    synchronises the stream; this one is staged (pageable memory) and ordered before later kernels."""
    return host if host.device == device else host.to(device, non_blocking=True)


def _host_copy(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` on the host: free for a CPU tensor, one wait for the device otherwise (callers keep such inputs
    on the host: the training tasks pass the batch's padding mask as the loader made it)."""
    return tensor.detach().cpu()


class Wav2Vec2Encoder(nn.Module):
    """Waveforms -> context representations; shared by pretraining and CTC (fairseq's Wav2Vec2Model body,
    transformers' Wav2Vec2Model)."""

    def __init__(self, cfg: Wav2Vec2Config) -> None:
        super().__init__()
        cfg.validate()
        self.config = cfg
        self.feature_grad_mult = cfg.feature_grad_mult
        self.feature_encoder = FeatureEncoder(cfg)
        smooth_conv_init_(self.feature_encoder, cfg.conv_smooth_init)
        self.feature_norm = nn.LayerNorm(cfg.feature_dim, eps=cfg.layer_norm_eps)
        self.feature_proj = nn.Linear(cfg.feature_dim, cfg.encoder_embed_dim)
        self.dropout_input = Dropout(cfg.dropout_input)
        self.dropout_features = Dropout(cfg.dropout_features)
        self.mask_emb = nn.Parameter(torch.empty(cfg.encoder_embed_dim).uniform_())
        self.context = ContextNetwork(cfg)

    def output_lengths(self, input_lengths: torch.Tensor) -> torch.Tensor:
        """(B,) samples -> (B,) frames."""
        return self.feature_encoder.output_lengths(input_lengths)

    def _extract(self, waveforms: torch.Tensor, lengths: torch.Tensor | None,
                 statistics: WaveformStatistics | None) -> torch.Tensor:
        # feature_grad_mult: 0 -> no gradient at all (fine-tuning), else scale the gradient (0.1 pretraining)
        if self.feature_grad_mult > 0:
            features = self.feature_encoder(waveforms, lengths, statistics=statistics)
            if self.feature_grad_mult != 1.0:
                features = GradMultiply.apply(features, self.feature_grad_mult)
            return features
        with torch.no_grad():
            return self.feature_encoder(waveforms, lengths, statistics=statistics)

    def make_time_mask(
        self, shape: tuple[int, int], padding_mask: torch.Tensor | None, seeds: Sequence[int] | None = None
    ) -> torch.Tensor:
        """A fresh (B, T) time mask from the config (fairseq: min_masks 2, padding never masked), on the host
        (numpy draws it); `padding_mask` (B, T) is read on the host too."""
        cfg = self.config
        mask = compute_mask_indices(
            shape, padding_mask, cfg.mask_prob, cfg.mask_length, min_masks=cfg.mask_min_masks,
            no_overlap=cfg.no_mask_overlap, min_space=cfg.mask_min_space,
            require_same_masks=cfg.require_same_masks, rng=None if seeds is not None else _numpy_rng(),
            seeds=seeds,
        )
        return torch.from_numpy(mask)

    def forward(
        self,
        waveforms: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        *,
        mask_indices: torch.Tensor | None = None,
        apply_mask: bool = False,
        mask_seeds: Sequence[int] | None = None,
        return_hidden_states: bool = False,
        waveform_statistics: WaveformStatistics | None = None,
    ) -> EncoderOutput:
        """Encode a batch: `extract_features` -> `project` -> `mask` -> context network.

        Args:
            waveforms: (B, L) float.
            padding_mask: (B, L) True at padded samples (right padding), or None.
            mask_indices: (B, T) bool time mask to apply as given (overrides `apply_mask`).
            apply_mask: draw time (and channel) masks from the config.
            mask_seeds: per-utterance seeds for the drawn masks.
            return_hidden_states: also return every layer's states.
            waveform_statistics: a whole recording's `feature_encoder.waveform_statistics`, to normalise
                chunks of it as the whole (long-audio transcription); None: each row's own.
        """
        feats = self.extract_features(waveforms, padding_mask, waveform_statistics)
        x = self.dropout_input(self.feature_proj(feats.features))  # (B, T, D)
        unmasked = self.dropout_features(feats.features)  # (B, T, C): the quantizer's input
        host_padding = None
        if feats.host_lengths is not None:
            host_padding = torch.arange(x.shape[1])[None, :] >= feats.host_lengths[:, None]  # (B, T) on the host
        x, mask_indices, host_mask = self._mask(x, host_padding, mask_indices=mask_indices, apply_mask=apply_mask,
                                                mask_seeds=mask_seeds)
        ctx = self.context(x, feats.padding_mask, return_hidden_states=return_hidden_states)
        return EncoderOutput(
            last_hidden_state=ctx.last_hidden_state, features=unmasked, padding_mask=feats.padding_mask,
            lengths=feats.lengths, mask_indices=mask_indices, feature_penalty=feats.feature_penalty,
            hidden_states=ctx.hidden_states, host_lengths=feats.host_lengths, host_mask_indices=host_mask,
        )

    def extract_features(self, waveforms: torch.Tensor, padding_mask: torch.Tensor | None = None,
                         waveform_statistics: WaveformStatistics | None = None) -> FeatureExtractorOutput:
        """waveforms (B, L), padding_mask (B, L) True where padded -> LayerNorm'ed CNN features (B, T, C), their
        frame padding and lengths, and the feature penalty."""
        batch_size = waveforms.shape[0]
        lengths = host_lengths = host_frame_lengths = None
        if padding_mask is not None:
            if padding_mask.shape != waveforms.shape:
                raise ValueError(f"padding_mask {tuple(padding_mask.shape)} must match waveforms "
                                 f"{tuple(waveforms.shape)}")
            # Every decision that depends on the lengths (is anything padded, frame counts, the masks and
            # distractors drawn from them) is taken on the host: a GPU step then never waits for its queue.
            host_padding = _host_copy(padding_mask)
            if bool(host_padding.any()):
                host_lengths = waveforms.shape[1] - host_padding.long().sum(1)  # (B,) valid samples
                self.feature_encoder.check_lengths(host_lengths)
                lengths = _to_device(host_lengths, waveforms.device)

        features = self._extract(waveforms, lengths, waveform_statistics)  # (B, C, T)
        num_frames = features.shape[-1]
        if lengths is None:
            frame_lengths = torch.full((batch_size,), num_frames, dtype=torch.long, device=waveforms.device)
            frame_padding = None
        else:
            host_frame_lengths = self.output_lengths(host_lengths)
            frame_lengths = _to_device(host_frame_lengths, waveforms.device)
            frame_padding = torch.arange(num_frames, device=waveforms.device)[None, :] >= frame_lengths[:, None]

        features = features.transpose(1, 2)  # (B, T, C)
        # fairseq's features_pen: mean square of the CNN output; here over valid frames only
        squares = features.float().pow(2)
        if frame_padding is None:
            penalty = squares.mean()
        else:
            valid = (~frame_padding)[:, :, None].to(squares.dtype)  # (B, T, 1)
            penalty = (squares * valid).sum() / (valid.sum() * squares.shape[-1])
        return FeatureExtractorOutput(features=self.feature_norm(features), padding_mask=frame_padding,
                                      lengths=frame_lengths, feature_penalty=penalty,
                                      host_lengths=host_frame_lengths)

    def mask(self, x: torch.Tensor, padding_mask: torch.Tensor | None, *, mask_indices: torch.Tensor | None = None,
             apply_mask: bool = False, mask_seeds: Sequence[int] | None = None,
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Time masking (x (B, T, D) replaced by the learned mask embedding at `mask_indices`, given or drawn)
        then, when drawing, channel masking (channels zeroed over every frame). Returns x and the time mask."""
        host_padding = None if padding_mask is None else _host_copy(padding_mask).to(torch.bool)
        x, mask_indices, _ = self._mask(x, host_padding, mask_indices=mask_indices, apply_mask=apply_mask,
                                        mask_seeds=mask_seeds)
        return x, mask_indices

    def _mask(self, x: torch.Tensor, host_padding: torch.Tensor | None, *, mask_indices: torch.Tensor | None,
              apply_mask: bool, mask_seeds: Sequence[int] | None,
              ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """`mask` with the frame padding on the host; also returns the time mask's host copy (drawn there)."""
        batch_size, num_frames = x.shape[:2]
        host_mask = None
        if mask_indices is None and apply_mask and self.config.mask_prob > 0:
            host_mask = self.make_time_mask((batch_size, num_frames), host_padding, mask_seeds)
        elif mask_indices is not None:
            # Given masks are checked once, on the host (a device mask is read back: a test's or a user's).
            if tuple(mask_indices.shape) != (batch_size, num_frames):
                raise ValueError(f"mask_indices must have shape (B, T) = {(batch_size, num_frames)}, "
                                 f"got {tuple(mask_indices.shape)}")
            host_mask = _host_copy(mask_indices).to(torch.bool)
            if host_padding is not None and bool((host_mask & host_padding).any()):
                raise ValueError("mask_indices marks padded frames; padding must never be masked")
        if host_mask is not None:
            mask_indices = _to_device(host_mask, x.device)
            x = torch.where(mask_indices[:, :, None], self.mask_emb.to(x.dtype), x)
        if apply_mask and self.config.mask_channel_prob > 0:
            channels = compute_channel_mask(
                batch_size, x.shape[-1], self.config.mask_channel_prob, self.config.mask_channel_length,
                min_masks=self.config.mask_channel_min_masks,
                require_same_masks=self.config.require_same_channel_masks, rng=_numpy_rng(),
            )
            x = x.masked_fill(_to_device(torch.from_numpy(channels), x.device)[:, None, :], 0.0)  # (B, 1, D)
        return x, mask_indices, host_mask


@dataclass
class PretrainingOutput:
    """Output of `Wav2Vec2ForPreTraining` (loss terms as fairseq's wav2vec criterion)."""

    loss: torch.Tensor
    """Scalar, SUM-reduced: contrastive + diversity_weight*diversity*S + feature_pen_weight*penalty*S
    (+ continuous_target_weight*continuous_loss when that weight is > 0)."""
    contrastive_loss: torch.Tensor
    """InfoNCE summed over masked steps (nats; divide by S*ln 2 for bits per step)."""
    diversity_loss: torch.Tensor
    """(G*V - prob_perplexity) / (G*V)."""
    feature_penalty: torch.Tensor
    """Mean squared CNN output."""
    sample_size: int
    """S: number of masked steps (the loss normaliser)."""
    logits: torch.Tensor
    """(S, 1 + K) fp32 cosine logits / logit_temp, rows in (batch, time) order, positive at index 0."""
    num_correct: torch.Tensor
    """Rows whose positive wins (fairseq rule, all-equal rows excluded); a 0-d tensor on the device."""
    num_count: int
    """Rows counted."""
    continuous_loss: torch.Tensor | None
    """InfoNCE against the continuous-feature targets, summed over masked steps (nats; included in `loss` with
    weight `continuous_target_weight`), or None when that weight is 0."""
    continuous_num_correct: torch.Tensor | None
    """Rows whose continuous positive wins (a 0-d tensor), or None."""
    code_perplexity: torch.Tensor
    """Hard-choice codebook perplexity over the masked steps."""
    prob_perplexity: torch.Tensor
    """Soft (softmax-averaged) codebook perplexity over the masked steps."""
    temperature: float
    """Gumbel temperature used."""
    mask_indices: torch.Tensor
    """(B, T) the time mask used."""
    targets: torch.Tensor
    """(S, final_dim) projected quantized targets at the masked steps."""
    padding_mask: torch.Tensor | None
    """(B, T) frame padding."""


class Wav2Vec2ForPreTraining(nn.Module):
    """Encoder + Gumbel quantizer + contrastive head (fairseq Wav2Vec2Model, transformers ForPreTraining)."""

    def __init__(self, cfg: Wav2Vec2Config) -> None:
        super().__init__()
        cfg.validate()
        self.config = cfg
        self.encoder = Wav2Vec2Encoder(cfg)
        self.quantizer = GumbelVectorQuantizer(
            cfg.feature_dim, num_groups=cfg.latent_groups, num_vars=cfg.latent_vars,
            codevector_dim=cfg.codevector_dim, max_temp=cfg.max_temp, min_temp=cfg.min_temp,
            temp_decay=cfg.temp_decay,
        )
        self.project_q = nn.Linear(cfg.codevector_dim, cfg.final_dim)
        self.final_proj = nn.Linear(cfg.encoder_embed_dim, cfg.final_dim)
        # Only with the auxiliary continuous-target term (a training aid; BASE/LARGE never have it).
        self.project_features = (nn.Linear(cfg.feature_dim, cfg.final_dim) if cfg.continuous_target_weight > 0
                                 else None)

    def set_num_updates(self, num_updates: int) -> None:
        """Step the Gumbel temperature schedule to `num_updates`."""
        self.quantizer.set_num_updates(num_updates)

    def forward(
        self,
        waveforms: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        *,
        mask_indices: torch.Tensor | None = None,
        negative_indices: torch.Tensor | None = None,
        mask_seeds: Sequence[int] | None = None,
    ) -> PretrainingOutput:
        """waveforms (B, L), padding_mask (B, L) True where padded.

        mask_indices (B, T) bool and negative_indices (B, T, K) long (transformers' `sampled_negative_indices`
        layout: indices into the flattened B*T axis, pointing at masked steps) are drawn when not given;
        mask_seeds (one per utterance) make the draws depend on the utterance only.
        """
        cfg = self.config
        enc = self.encoder(waveforms, padding_mask, mask_indices=mask_indices, apply_mask=True,
                           mask_seeds=mask_seeds)
        mask, host_mask = enc.mask_indices, enc.host_mask_indices
        if host_mask is None or not bool(host_mask.any()):
            raise ValueError("pretraining needs masked steps: set mask_prob > 0 or pass mask_indices")

        # The masked steps are chosen on the host, so S and their positions are known without reading the
        # device: index_select at host-made indices = boolean indexing `x[mask]` (row-major order), unsynced.
        steps = _to_device(host_mask.reshape(-1).nonzero().squeeze(1), mask.device)  # (S,) flat B*T positions
        predictions = self.final_proj(enc.last_hidden_state.flatten(0, 1).index_select(0, steps))  # (S, final_dim)
        masked_features = enc.features.flatten(0, 1).index_select(0, steps)  # (S, C)
        quantized = self.quantizer(masked_features)  # (S, codevector_dim)
        targets = self.project_q(quantized.codevectors)  # (S, final_dim)

        if negative_indices is None:
            negative_indices = sample_distractors(host_mask, cfg.num_negatives, seeds=mask_seeds)
        rows = self._negative_rows(host_mask, _host_copy(negative_indices))  # (S, K) on the host
        counts = host_mask.sum(1)  # (B,) masked steps per utterance
        # (S, 1 + K), distractors read from per-utterance cosine matrices (no (S, K, final_dim) gather); a
        # distractor with the positive's codevector (the same code in every group) is set to -inf
        logits = sampled_contrastive_logits(predictions, targets, rows, counts, cfg.logit_temp,
                                            target_ids=self.quantizer.code_ids(quantized.indices))

        terms = pretraining_loss(
            logits, quantized.prob_perplexity, enc.feature_penalty, num_codevectors=self.quantizer.num_codevectors,
            diversity_weight=cfg.diversity_weight, feature_pen_weight=cfg.feature_pen_weight,
        )
        loss, continuous_loss, continuous_correct = terms.loss, None, None
        if self.project_features is not None:
            # The same predictions and distractor rows, scored against the projected unquantized features.
            feature_targets = self.project_features(masked_features)  # (S, final_dim)
            continuous_logits = sampled_contrastive_logits(predictions, feature_targets, rows, counts,
                                                           cfg.logit_temp)  # (S, 1 + K)
            continuous_loss = infonce_loss(continuous_logits)
            continuous_correct = num_correct(continuous_logits)
            loss = loss + cfg.continuous_target_weight * continuous_loss
        return PretrainingOutput(
            loss=loss, contrastive_loss=terms.contrastive_loss, diversity_loss=terms.diversity_loss,
            feature_penalty=terms.feature_penalty, sample_size=terms.sample_size, logits=logits,
            num_correct=terms.num_correct, num_count=terms.num_count, continuous_loss=continuous_loss,
            continuous_num_correct=continuous_correct, code_perplexity=quantized.code_perplexity,
            prob_perplexity=quantized.prob_perplexity, temperature=quantized.temperature, mask_indices=mask,
            targets=targets, padding_mask=enc.padding_mask,
        )

    @staticmethod
    def _negative_rows(mask: torch.Tensor, negative_indices: torch.Tensor) -> torch.Tensor:
        """Map (B, T, K) flat B*T indices of distractors to rows of the (S, ...) masked-step tensors (on the
        device of `mask`: the host, in `forward`)."""
        batch_size, num_frames = mask.shape
        if negative_indices.dim() != 3 or tuple(negative_indices.shape[:2]) != (batch_size, num_frames):
            raise ValueError(f"negative_indices must be (B, T, K) with (B, T) = {(batch_size, num_frames)}, "
                             f"got {tuple(negative_indices.shape)}")
        flat_mask = mask.reshape(-1)  # (B*T,)
        row_of = torch.full((flat_mask.numel(),), -1, dtype=torch.long, device=mask.device)
        row_of[flat_mask] = torch.arange(int(flat_mask.sum()), device=mask.device)
        picked = negative_indices[mask].long()  # (S, K)
        if bool(((picked < 0) | (picked >= flat_mask.numel())).any()):
            raise ValueError("negative_indices must index the flattened B*T axis")
        rows = row_of[picked]
        if bool((rows < 0).any()):
            raise ValueError("negative_indices must point at masked steps only (never unmasked or padded)")
        return rows


@dataclass
class CTCOutput:
    """Output of `Wav2Vec2ForCTC`."""

    logits: torch.Tensor
    """(B, T, V) unnormalised scores (log_softmax them for CTC)."""
    padding_mask: torch.Tensor | None
    """(B, T) True at padded frames, or None."""
    lengths: torch.Tensor
    """(B,) valid frames per utterance."""
    hidden_states: list[torch.Tensor] | None = None
    """Per-layer encoder states when requested."""
    host_lengths: torch.Tensor | None = None
    """(B,) `lengths` on the host (CPU), or None when nothing is padded: CTC's lengths without a device read."""


class Wav2Vec2ForCTC(nn.Module):
    """Encoder -> dropout -> Linear(D, vocab) (fairseq Wav2VecCtc, transformers Wav2Vec2ForCTC)."""

    def __init__(self, cfg: Wav2Vec2Config, vocab_size: int) -> None:
        super().__init__()
        cfg.validate()
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2 (blank + symbols), got {vocab_size}")
        self.config = cfg
        self.vocab_size = vocab_size
        self.encoder = Wav2Vec2Encoder(cfg)
        self.dropout = nn.Dropout(cfg.final_dropout)
        self.head = nn.Linear(cfg.encoder_embed_dim, vocab_size)
        nn.init.xavier_uniform_(self.head.weight)  # fairseq Wav2VecEncoder.proj init
        nn.init.zeros_(self.head.bias)

    @classmethod
    def from_pretrained_encoder(
        cls, pretrained: Wav2Vec2ForPreTraining | Wav2Vec2Encoder, vocab_size: int,
        config: Wav2Vec2Config | None = None,
    ) -> Wav2Vec2ForCTC:
        """A CTC model whose encoder starts from a pretrained (or fine-tuned) encoder; a pretraining model's
        quantizer, project_q and final_proj are left behind, as fairseq's remove_pretraining_modules.

        `config` (default: the encoder's) may differ in fields that keep the parameter shapes (dropouts,
        masking, layerdrop, feature_grad_mult): fine-tuning's settings on top of the pretrained architecture.
        The head is freshly initialised.
        """
        encoder = pretrained.encoder if isinstance(pretrained, Wav2Vec2ForPreTraining) else pretrained
        model = cls(config if config is not None else encoder.config, vocab_size)
        model.encoder.load_state_dict(encoder.state_dict())
        return model.to(next(encoder.parameters()).device)

    def forward(
        self,
        waveforms: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        *,
        mask_seeds: Sequence[int] | None = None,
        return_hidden_states: bool = False,
        waveform_statistics: WaveformStatistics | None = None,
    ) -> CTCOutput:
        """waveforms (B, L), padding_mask (B, L) True where padded -> CTCOutput; masks only in training.
        `waveform_statistics`: as in `Wav2Vec2Encoder.forward`."""
        cfg = self.config
        apply_mask = self.training and (cfg.mask_prob > 0 or cfg.mask_channel_prob > 0)
        enc = self.encoder(waveforms, padding_mask, apply_mask=apply_mask, mask_seeds=mask_seeds,
                           return_hidden_states=return_hidden_states, waveform_statistics=waveform_statistics)
        logits = self.head(self.dropout(enc.last_hidden_state))  # (B, T, V)
        return CTCOutput(logits=logits, padding_mask=enc.padding_mask, lengths=enc.lengths,
                         hidden_states=enc.hidden_states, host_lengths=enc.host_lengths)
