"""int8 graphs: onnxruntime's dynamic quantization of the linear layers (no torch here).

``quantize_dynamic`` stores each MatMul's weight as int8 (per output channel by default) and quantizes its
activations to uint8 per tensor at run time, from their own range; onnxruntime then runs the products as
integer GEMMs (VNNI / AMX-INT8 where the CPU has them). Only weight products are quantized (onnxruntime's
``MatMulConstBOnly``): attention's activation-by-activation products and the convolutions (the feature
encoder, the positional convolution) stay fp32.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

KEEPABLE = ("feature_proj", "head")
"""Linear layers ``keep_fp32`` can name: the projection of the conv features (the first linear layer) and the
CTC head (the last)."""


@dataclass(kw_only=True)
class QuantizeConfig:
    """How ``quantize_int8`` quantizes."""

    per_channel: bool = True
    """One scale per output channel of each weight (more accurate than one per tensor, same speed)."""
    reduce_range: bool = False
    """7-bit weights, for CPUs without VNNI whose u8 x s8 products can saturate (onnxruntime's advice)."""
    keep_fp32: list[str] = field(default_factory=list)
    """Linear layers left in fp32, among ``KEEPABLE``."""

    def validate(self) -> None:
        bad = [name for name in self.keep_fp32 if name not in KEEPABLE]
        if bad:
            raise ValueError(f"`keep_fp32` names linear layers among {KEEPABLE}, got {bad}")


def weight_matmuls(model_path: str | Path) -> list[str]:
    """Names of the MatMul/Gemm nodes whose second input is a weight (an initializer), in graph order: the
    linear layers, from the feature projection to the CTC head (attention's activation products excluded)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    weights = {init.name for init in model.graph.initializer}
    return [node.name for node in model.graph.node
            if node.op_type in ("MatMul", "Gemm") and len(node.input) > 1 and node.input[1] in weights]


def quantize_int8(fp32_path: str | Path, int8_path: str | Path, config: QuantizeConfig | None = None) -> Path:
    """Write an int8 copy of the fp32 graph at ``fp32_path`` to ``int8_path``; returns ``int8_path``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    config = config or QuantizeConfig()
    config.validate()
    linear = weight_matmuls(fp32_path)
    excluded = ([linear[0]] if "feature_proj" in config.keep_fp32 else []) + (
        [linear[-1]] if "head" in config.keep_fp32 else [])
    # quantize_dynamic advises `quant_pre_process` through the root logger; on these graphs its symbolic
    # shape inference fails and the rest leaves them unchanged (tried), so the advice is not shown.
    # When that inference fails onnxruntime also saves its partial graph (sym_shape_infer_temp.onnx and a
    # <uuid>.data) into the working directory; the quantizer runs in a temporary one so nothing is left behind.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    fp32_path, int8_path = Path(fp32_path).resolve(), Path(int8_path).resolve()
    cwd = os.getcwd()
    try:
        with tempfile.TemporaryDirectory(prefix="speechssl-quantize-") as scratch:
            os.chdir(scratch)
            try:
                quantize_dynamic(str(fp32_path), str(int8_path), op_types_to_quantize=["MatMul", "Gemm"],
                                 per_channel=config.per_channel, reduce_range=config.reduce_range,
                                 weight_type=QuantType.QInt8, nodes_to_exclude=excluded)
            finally:
                os.chdir(cwd)
    finally:
        root.setLevel(level)
    return Path(int8_path)
