"""speechssl: wav2vec 2.0 self-supervised speech pretraining, CTC fine-tuning and decoding.

``speechssl.load(path)`` gives a ``Recognizer`` (``speechssl.api``) for a checkpoint or an ONNX export folder.
"""

__version__ = "0.1.0"

_API = ("load", "Recognizer", "Features")


def __getattr__(name: str):
    # The API loads on first use, so `import speechssl` (the command line's first import) stays light.
    if name in _API:
        from speechssl import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
