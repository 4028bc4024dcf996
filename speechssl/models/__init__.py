"""wav2vec 2.0 models: config, presets, encoder, pretraining and CTC models."""

from speechssl.models.config import FrameGeometry, Wav2Vec2Config
from speechssl.models.feature_encoder import conv_output_lengths, feature_lengths
from speechssl.models.losses import PretrainingLoss
from speechssl.models.masking import compute_mask_indices, mask_seed, sample_distractors
from speechssl.models.presets import PRESETS, get_preset
from speechssl.models.quantizer import GumbelVectorQuantizer, QuantizerOutput
from speechssl.models.wav2vec2 import (
    CTCOutput,
    EncoderOutput,
    FeatureExtractorOutput,
    PretrainingOutput,
    Wav2Vec2Encoder,
    Wav2Vec2ForCTC,
    Wav2Vec2ForPreTraining,
)

__all__ = [
    "PRESETS",
    "CTCOutput",
    "EncoderOutput",
    "FeatureExtractorOutput",
    "FrameGeometry",
    "GumbelVectorQuantizer",
    "PretrainingLoss",
    "PretrainingOutput",
    "QuantizerOutput",
    "Wav2Vec2Config",
    "Wav2Vec2Encoder",
    "Wav2Vec2ForCTC",
    "Wav2Vec2ForPreTraining",
    "compute_mask_indices",
    "conv_output_lengths",
    "feature_lengths",
    "get_preset",
    "mask_seed",
    "sample_distractors",
]
