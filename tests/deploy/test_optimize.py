"""speechssl.deploy.optimize: 1-D convolutions rewritten as 2-D keep their outputs; the export's graph is the
rewritten one (its parity with torch is tests/deploy/test_export.py's); --no-optimize keeps the traced graph."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed: pip install -e '.[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install -e '.[onnx]'")

from onnx import TensorProto, helper, numpy_helper

from speechssl.cli.main import main
from speechssl.deploy.bundle import read_bundle_config
from speechssl.deploy.optimize import convs_as_2d


def conv_kernels(model) -> list[list[int]]:
    return [list(helper.get_attribute_value(a)) for node in model.graph.node if node.op_type == "Conv"
            for a in node.attribute if a.name == "kernel_shape"]


def three_convs() -> onnx.ModelProto:
    """x (B, 8, T) -> strided conv with bias -> grouped, padded, dilated conv whose weight is computed in the
    graph (as weight norm's is) -> depthwise conv without bias."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((16, 8, 10)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(rng.standard_normal(16).astype(np.float32), "b1")
    v2 = numpy_helper.from_array(rng.standard_normal((16, 4, 7)).astype(np.float32), "v2")
    g2 = numpy_helper.from_array(np.array(0.5, np.float32), "g2")
    w3 = numpy_helper.from_array(rng.standard_normal((16, 1, 3)).astype(np.float32), "w3")
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["y1"], kernel_shape=[10], strides=[5]),
        helper.make_node("Mul", ["v2", "g2"], ["w2"]),
        helper.make_node("Conv", ["y1", "w2"], ["y2"], kernel_shape=[7], pads=[6, 5], dilations=[2], group=4),
        helper.make_node("Conv", ["y2", "w3"], ["y"], kernel_shape=[3], strides=[2], group=16),
    ]
    graph = helper.make_graph(nodes, "convs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 8, "T"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 16, "T2"])],
                              initializer=[w1, b1, v2, g2, w3])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def run(model, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_convs_as_2d_keeps_every_1d_convolutions_output():
    model = three_convs()
    x = np.random.default_rng(1).standard_normal((2, 8, 401)).astype(np.float32)
    expected = run(model, x)
    assert convs_as_2d(model) == 3
    onnx.checker.check_model(model)
    assert conv_kernels(model) == [[1, 10], [1, 7], [1, 3]]
    got = run(model, x)
    assert got.shape == expected.shape == (2, 16, 38)  # 401 -> 79 -> 78 -> 38 frames
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)  # float sums in another order
    assert convs_as_2d(model) == 0  # nothing 1-D is left


def test_the_exported_graph_is_the_rewritten_one(onnx_folder):
    graph = onnx.load(str(onnx_folder / "model.onnx"))
    kernels = conv_kernels(graph)
    assert kernels and all(len(k) == 2 and k[0] == 1 for k in kernels)  # feature encoder + positional conv
    fused = [node.op_type for node in graph.graph.node if node.domain == "com.microsoft"]
    assert "SkipLayerNormalization" in fused
    assert "speechssl.deploy.optimize" in read_bundle_config(onnx_folder).exporter


def test_no_optimize_writes_the_traced_graph(tmp_path, tiny_checkpoint, capsys):
    assert main(["export", str(tiny_checkpoint), str(tmp_path / "plain"), "--no-optimize"]) == 0
    assert "graph rewritten" not in capsys.readouterr().out
    graph = onnx.load(str(tmp_path / "plain" / "model.onnx"))
    assert all(node.domain in ("", "ai.onnx") for node in graph.graph.node)  # standard operators only
    assert all(len(k) == 1 for k in conv_kernels(graph))
    assert "optimize" not in read_bundle_config(tmp_path / "plain").exporter
