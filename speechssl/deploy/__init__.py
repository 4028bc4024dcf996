"""Deployment: ONNX export (fp32, int8) and a transcriber that runs on onnxruntime without torch.

Modules: ``graph`` (the CTC model in exportable operators; torch), ``export`` (``export_onnx``: checkpoint ->
folder, checked against the torch model; torch), ``quantize`` (int8 with onnxruntime's tools), ``bundle`` (the
folder's ``config.json``), ``runtime`` (``OnnxEmitter``: the folder in an onnxruntime session, called like
``ModelEmitter``). ``bundle``, ``quantize`` and ``runtime`` import no torch; nothing here is imported by
this ``__init__``, so ``import speechssl.deploy.runtime`` stays torch-free.
"""
