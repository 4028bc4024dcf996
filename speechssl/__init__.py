"""speechssl: wav2vec 2.0 self-supervised speech pretraining, CTC fine-tuning and decoding."""

__version__ = "0.1.0"
