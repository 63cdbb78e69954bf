"""Operator cases the ONNX 1.12 backend suite predates, in its layout, with numpy's answers.

Debian's libonnx-testdata (ONNX 1.12) stops at opset 17, so it has no case for what opsets 18
to 20 changed — the Reduce* operators' axes as an input, Split's num_outputs, Pad's axes and
wrap mode, Gelu — nor for variadic operators broadcasting three different shapes. This writes
such cases the way the suite does: NAME/model.onnx and NAME/test_data_set_0/{input,output}_N.pb
(TensorProtos), the expected outputs computed with numpy (float64, then cast), never with the
runtime under test. internal/model/opcases_test.go runs them with the suite's harness.

    /usr/bin/python3 hack/opcases/opcases.py internal/model/testdata/opcases

Everything is seeded; the same numpy and onnx write the same bytes.
"""

import math
import os
import shutil
import sys

import numpy as np
from onnx import helper, mapping, numpy_helper

import recurrent
import windows

RNG = np.random.default_rng(20261202)


def erf(x):
    return np.vectorize(math.erf)(x.astype(np.float64))


def case(root, name, opset, nodes, inputs, outputs):
    """inputs/outputs: lists of (name, numpy array); the graph declares their exact shapes."""
    def info(n, a):
        return helper.make_tensor_value_info(n, mapping.NP_TYPE_TO_TENSOR_TYPE[a.dtype], a.shape)
    graph = helper.make_graph(
        nodes, name,
        [info(n, a) for n, a in inputs],
        [info(n, a) for n, a in outputs])
    model = helper.make_model(graph, producer_name="freightcast-opcases",
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    d = os.path.join(root, name)
    os.makedirs(os.path.join(d, "test_data_set_0"))
    with open(os.path.join(d, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    for kind, values in (("input", inputs), ("output", outputs)):
        for i, (n, a) in enumerate(values):
            with open(os.path.join(d, "test_data_set_0", f"{kind}_{i}.pb"), "wb") as f:
                f.write(numpy_helper.from_array(a, n).SerializeToString())


def main(root):
    if os.path.isdir(root):
        shutil.rmtree(root)
    os.makedirs(root)
    x = RNG.standard_normal((3, 4)).astype(np.float32) * 3

    # Gelu (opset 20), exact and tanh-approximated.
    exact = 0.5 * x * (1 + erf(x / math.sqrt(2)))
    case(root, "gelu_none", 20, [helper.make_node("Gelu", ["x"], ["y"])],
         [("x", x)], [("y", exact.astype(np.float32))])
    xd = x.astype(np.float64)
    approx = 0.5 * xd * (1 + np.tanh(math.sqrt(2 / math.pi) * (xd + 0.044715 * xd ** 3)))
    case(root, "gelu_tanh", 20, [helper.make_node("Gelu", ["x"], ["y"], approximate="tanh")],
         [("x", x)], [("y", approx.astype(np.float32))])

    # Reduce* with the axes as an input (opset 18; ReduceSum since 13), keepdims both ways,
    # negative axes, and the empty axes of noop_with_empty_axes.
    data = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    d64 = data.astype(np.float64)
    reductions = {"ReduceMean": np.mean, "ReduceSum": np.sum, "ReduceMax": np.max, "ReduceMin": np.min}
    for op, fn in reductions.items():
        for axes, keep in (([1], 1), ([-1, 0], 0), ([2], 0)):
            want = fn(d64, axis=tuple(axes), keepdims=bool(keep)).astype(np.float32)
            name = f"{op.lower()}_axes_input_{'_'.join(str(a).replace('-', 'm') for a in axes)}_keep{keep}"
            case(root, name, 18, [helper.make_node(op, ["data", "axes"], ["r"], keepdims=keep)],
                 [("data", data), ("axes", np.array(axes, dtype=np.int64))], [("r", want)])
        # No axes: every axis; with noop_with_empty_axes=1, the input itself.
        case(root, f"{op.lower()}_no_axes", 18, [helper.make_node(op, ["data"], ["r"], keepdims=0)],
             [("data", data)], [("r", np.array(fn(d64), dtype=np.float32))])
        case(root, f"{op.lower()}_empty_axes_noop", 18,
             [helper.make_node(op, ["data", "axes"], ["r"], noop_with_empty_axes=1)],
             [("data", data), ("axes", np.array([], dtype=np.int64))], [("r", data)])

    # Split by num_outputs (opset 18): ceil-sized parts, the last one smaller.
    seq = np.arange(7, dtype=np.float32)
    case(root, "split_num_outputs_uneven", 18,
         [helper.make_node("Split", ["x"], ["a", "b", "c"], axis=0, num_outputs=3)],
         [("x", seq)], [("a", seq[0:3]), ("b", seq[3:6]), ("c", seq[6:7])])
    mat = RNG.standard_normal((2, 6)).astype(np.float32)
    case(root, "split_num_outputs_even_axis1", 18,
         [helper.make_node("Split", ["x"], ["a", "b"], axis=1, num_outputs=2)],
         [("x", mat)], [("a", mat[:, :3]), ("b", mat[:, 3:])])

    # Pad with axes (opset 18) in every mode; wrap (opset 19).
    grid = RNG.standard_normal((2, 3)).astype(np.float32)
    for mode in ("constant", "reflect", "edge", "wrap"):
        kw = {"constant_values": 1.5} if mode == "constant" else {}
        want = np.pad(grid, ((0, 0), (2, 1)), mode=mode, **kw)
        inputs = [("x", grid), ("pads", np.array([2, 1], dtype=np.int64))]
        names = ["x", "pads"]
        if mode == "constant":
            inputs.append(("value", np.array(1.5, dtype=np.float32)))
            names.append("value")
        else:
            names.append("")
        inputs.append(("axes", np.array([-1], dtype=np.int64)))
        names.append("axes")
        case(root, f"pad_axes_{mode}", 19, [helper.make_node("Pad", names, ["y"], mode=mode)],
             inputs, [("y", want)])

    # Variadic operators broadcasting three different shapes into one.
    a = RNG.standard_normal((2, 3)).astype(np.float32)
    b = RNG.standard_normal((3,)).astype(np.float32)
    c = RNG.standard_normal((1, 1)).astype(np.float32)
    a64, b64, c64 = (v.astype(np.float64) for v in (a, b, c))
    variadic = {"Sum": a64 + b64 + c64, "Mean": (a64 + b64 + c64) / 3,
                "Max": np.maximum(np.maximum(a64, b64), c64), "Min": np.minimum(np.minimum(a64, b64), c64)}
    for op, want in variadic.items():
        case(root, f"{op.lower()}_broadcast_three", 13, [helper.make_node(op, ["a", "b", "c"], ["y"])],
             [("a", a), ("b", b), ("c", c)], [("y", want.astype(np.float32))])

    # LayerNormalization over the last two axes with its Mean and InvStdDev outputs.
    t = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    scale = RNG.standard_normal((3, 4)).astype(np.float32)
    bias = RNG.standard_normal((4,)).astype(np.float32)
    t64 = t.astype(np.float64)
    mean = t64.mean(axis=(1, 2), keepdims=True)
    inv = 1 / np.sqrt(((t64 - mean) ** 2).mean(axis=(1, 2), keepdims=True) + 1e-3)
    y = (t64 - mean) * inv * scale + bias
    case(root, "layernorm_axis1_stats", 17,
         [helper.make_node("LayerNormalization", ["x", "s", "b"], ["y", "m", "i"], axis=1, epsilon=1e-3)],
         [("x", t), ("s", scale), ("b", bias)],
         [("y", y.astype(np.float32)), ("m", mean.astype(np.float32)), ("i", inv.astype(np.float32))])

    # LayerNormalization without its optional bias, over the last axis.
    y = (t64 - t64.mean(axis=-1, keepdims=True)) / np.sqrt(t64.var(axis=-1, keepdims=True) + 1e-5) * scale[0]
    case(root, "layernorm_no_bias", 17,
         [helper.make_node("LayerNormalization", ["x", "s"], ["y"])],
         [("x", t), ("s", scale[0])], [("y", y.astype(np.float32))])

    # MatMul broadcasting a stack of matrices against one, and a 1-D operand on each side.
    s = RNG.standard_normal((2, 1, 3, 4)).astype(np.float32)
    m = RNG.standard_normal((5, 4, 2)).astype(np.float32)
    v = RNG.standard_normal((4,)).astype(np.float32)
    case(root, "matmul_batch_broadcast", 13, [helper.make_node("MatMul", ["s", "m"], ["y"])],
         [("s", s), ("m", m)], [("y", np.matmul(s.astype(np.float64), m.astype(np.float64)).astype(np.float32))])
    case(root, "matmul_vector_right", 13, [helper.make_node("MatMul", ["s", "v"], ["y"])],
         [("s", s), ("v", v)], [("y", np.matmul(s.astype(np.float64), v.astype(np.float64)).astype(np.float32))])
    case(root, "matmul_vector_left", 13, [helper.make_node("MatMul", ["v", "m"], ["y"])],
         [("v", v), ("m", m)], [("y", np.matmul(v.astype(np.float64), m.astype(np.float64)).astype(np.float32))])

    windows.cases(case, root)
    recurrent.cases(case, root)
    index_cases(root)


def index_cases(root):
    """ScatterElements and ScatterND reductions of opset 18 (max, min), which the suite predates,
    with negative and INT32 indices."""
    rng = np.random.default_rng(20261203)
    data = rng.standard_normal((3, 4)).astype(np.float32)
    idx = np.array([[1, -1, 0, 2], [1, 0, -3, 2]], dtype=np.int32)
    upd = rng.standard_normal((2, 4)).astype(np.float32)
    for red, f in (("max", np.maximum), ("min", np.minimum), ("add", np.add), ("mul", np.multiply)):
        want = data.copy()
        for i in range(2):
            for j in range(4):
                want[idx[i, j], j] = f(want[idx[i, j], j], upd[i, j])
        case(root, f"scatterelements_{red}_int32", 18,
             [helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], axis=0, reduction=red)],
             [("x", data), ("i", idx), ("u", upd)], [("y", want)])
    cube = rng.standard_normal((2, 3, 4)).astype(np.float32)
    nd = np.array([[1, -1], [0, 2], [1, 2]], dtype=np.int64)
    rows = rng.standard_normal((3, 4)).astype(np.float32)
    for red, f in (("max", np.maximum), ("min", np.minimum)):
        want = cube.copy()
        for i in range(3):
            want[tuple(nd[i])] = f(want[tuple(nd[i])], rows[i])
        case(root, f"scatternd_{red}", 18,
             [helper.make_node("ScatterND", ["x", "i", "u"], ["y"], reduction=red)],
             [("x", cube), ("i", nd), ("u", rows)], [("y", want)])
    # GatherND with a batch axis and negative indices.
    bi = np.array([[[1, -1]], [[-2, 0]]], dtype=np.int64)
    want = np.stack([cube[b][tuple(bi[b, 0])][None] for b in range(2)])
    case(root, "gathernd_batch_negative", 13,
         [helper.make_node("GatherND", ["x", "i"], ["y"], batch_dims=1)],
         [("x", cube), ("i", bi)], [("y", want)])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "internal/model/testdata/opcases")
