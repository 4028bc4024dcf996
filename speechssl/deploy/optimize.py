"""Rewrites of an exported fp32 graph for onnxruntime's fastest CPU kernels (no torch here).

Two rewrites, both exact up to float rounding (the export re-checks the result against the torch model):

* ``convs_as_2d``: every 1-D ``Conv`` becomes a 2-D one over a height-1 image (``Unsqueeze`` -> ``Conv`` ->
  ``Squeeze``). onnxruntime's blocked-layout (NCHWc) convolution kernels, its fastest on x86, only take 2-D
  convolutions; a 1-D one runs as im2col + GEMM. The feature encoder's seven convolutions and the positional
  convolution are 1-D, and on BASE they took about a third of the int8 graph's time.
* ``fuse_transformer_ops``: onnxruntime's own transformer optimizer (``onnxruntime.transformers``, shipped with
  onnxruntime) fuses the residual add + LayerNorm (``SkipLayerNormalization``) and the bias + GELU
  (``BiasGelu``/``Gelu``) of every layer into single kernels. (Its attention fusion does not match the
  exporter's attention pattern; attention stays as MatMul/Softmax.)

Measured on BASE (batch 1 x 10 s, one thread, an Intel Xeon with AMX, onnxruntime 1.32, bench/README.md):
the int8 graph ran 1.46x the unrewritten fp32 graph, 1.89x with both rewrites; fp32 itself 1.21x.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path


@dataclass(kw_only=True)
class OptimizeReport:
    """What ``optimize_graph`` rewrote."""

    convs_as_2d: int
    """1-D convolutions rewritten as 2-D."""
    fused: dict[str, int]
    """Fused operators written, by type (those with a count above zero)."""


def convs_as_2d(model) -> int:
    """Rewrite every 1-D ``Conv`` of ``model`` (an ``onnx.ModelProto``, changed in place) as a 2-D one over a
    height-1 input; returns how many. Weights and inputs get an ``Unsqueeze`` on axis 2 (folded into the
    initializer by onnxruntime's constant folding when the weight is one), the output a ``Squeeze``."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    axis = "speechssl_height_axis"
    nodes, converted = [], 0
    for node in graph.node:
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        kernel = attributes.get("kernel_shape")
        one_d = node.op_type == "Conv" and node.domain in ("", "ai.onnx") and kernel is not None and len(kernel) == 1
        if not one_d:
            nodes.append(node)
            continue
        if attributes.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise ValueError(f"Conv {node.name!r}: auto_pad {attributes['auto_pad']!r} is not rewritten; "
                             "the exporter writes explicit pads")
        converted += 1
        tag = f"{node.name or 'conv'}_2d{converted}"
        x, weight, *bias = node.input
        pads = list(attributes.get("pads", [0, 0]))  # [begin, end] of the time axis
        nodes += [
            helper.make_node("Unsqueeze", [x, axis], [f"{tag}_x"], name=f"{tag}_unsqueeze_x"),
            helper.make_node("Unsqueeze", [weight, axis], [f"{tag}_w"], name=f"{tag}_unsqueeze_w"),
            # (B, C, T) -> (B, C, 1, T); the weight (O, C/g, K) -> (O, C/g, 1, K)
            helper.make_node("Conv", [f"{tag}_x", f"{tag}_w", *bias], [f"{tag}_y"], name=tag,
                             kernel_shape=[1, kernel[0]], strides=[1, attributes.get("strides", [1])[0]],
                             dilations=[1, attributes.get("dilations", [1])[0]], pads=[0, pads[0], 0, pads[1]],
                             group=attributes.get("group", 1)),
            # (B, O, 1, T') -> (B, O, T')
            helper.make_node("Squeeze", [f"{tag}_y", axis], list(node.output), name=f"{tag}_squeeze"),
        ]
    if converted:
        graph.initializer.append(numpy_helper.from_array(np.array([2], dtype=np.int64), axis))
        del graph.node[:]
        graph.node.extend(nodes)
    return converted


def fuse_transformer_ops(model, *, num_heads: int, hidden_size: int):
    """``model`` (an ``onnx.ModelProto``) with onnxruntime's transformer fusions applied (a new ModelProto)."""
    from onnx import helper
    from onnxruntime.transformers.optimizer import optimize_by_fusion

    # Declared up front: the optimizer runs onnx shape inference between its fusions, which refuses contrib
    # ops of a domain the model does not import yet (seen on the features graph).
    if not any(opset.domain == "com.microsoft" for opset in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))

    # The optimizer logs every fusion it tries at INFO/WARNING through its own loggers.
    quiet = [logging.getLogger(name) for name in ("onnxruntime.transformers", "fusion_base", "onnx_model")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        optimized = optimize_by_fusion(model, model_type="bert", num_heads=num_heads, hidden_size=hidden_size)
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
    return optimized.model  # the optimizer's OnnxModel wraps the ModelProto


def fused_counts(model) -> dict[str, int]:
    """Fused operators (onnxruntime's ``com.microsoft`` contrib ops) in ``model`` by type."""
    counts: dict[str, int] = {}
    for node in model.graph.node:
        if node.domain == "com.microsoft":
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def optimize_graph(src: str | Path, dst: str | Path, *, num_heads: int, hidden_size: int) -> OptimizeReport:
    """Write ``src`` (an fp32 graph) with both rewrites to ``dst``."""
    import onnx

    model = onnx.load(str(src))
    converted = convs_as_2d(model)
    model = fuse_transformer_ops(model, num_heads=num_heads, hidden_size=hidden_size)
    onnx.save(model, str(dst))
    return OptimizeReport(convs_as_2d=converted, fused=fused_counts(model))
