"""wav2vec 2.0 models: config, presets, encoder, pretraining and CTC models."""

import importlib

from speechssl.models.config import FrameGeometry, Wav2Vec2Config
from speechssl.models.presets import PRESETS, get_preset

# The modules below need torch; they load on first use, so that the config and its frame geometry (what the
# onnxruntime transcriber, speechssl.deploy.runtime, reads) import where torch is not installed.
_TORCH_EXPORTS = {
    "conv_output_lengths": "feature_encoder", "feature_lengths": "feature_encoder",
    "PretrainingLoss": "losses",
    "compute_mask_indices": "masking", "mask_seed": "masking", "sample_distractors": "masking",
    "GumbelVectorQuantizer": "quantizer", "QuantizerOutput": "quantizer",
    "CTCOutput": "wav2vec2", "EncoderOutput": "wav2vec2", "FeatureExtractorOutput": "wav2vec2",
    "PretrainingOutput": "wav2vec2", "Wav2Vec2Encoder": "wav2vec2", "Wav2Vec2ForCTC": "wav2vec2",
    "Wav2Vec2ForPreTraining": "wav2vec2",
}

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


def __getattr__(name: str):
    module = _TORCH_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
