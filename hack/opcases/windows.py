"""Cases for the convolution-network operators and Einsum where the ONNX 1.12 suite has none:
LpPool and GlobalLpPool, GroupNormalization (opset 18), Einsum beyond the suite's five. numpy
computes every answer, in float64, from the operators' definitions in ONNX's Operators.md.
Called by opcases.py."""

import numpy as np
from onnx import helper

RNG = np.random.default_rng(20261203)


def lp_pool(x, kernel, strides, pads, p):
    """x: [N, C, D...]; zeros in the padding, which add nothing to sum |x|^p."""
    rank = len(kernel)
    width = [(0, 0), (0, 0)] + [(pads[d], pads[rank + d]) for d in range(rank)]
    xp = np.pad(x.astype(np.float64), width)
    out_sizes = [(xp.shape[2 + d] - kernel[d]) // strides[d] + 1 for d in range(rank)]
    y = np.zeros(x.shape[:2] + tuple(out_sizes))
    for pos in np.ndindex(*out_sizes):
        window = tuple(slice(pos[d] * strides[d], pos[d] * strides[d] + kernel[d]) for d in range(rank))
        y[(Ellipsis,) + pos] = (np.abs(xp[(slice(None), slice(None)) + window]) ** p).sum(
            axis=tuple(range(2, 2 + rank))) ** (1 / p)
    return y


def cases(case, root):
    x2 = RNG.standard_normal((2, 3, 5, 6)).astype(np.float32)
    x1 = RNG.standard_normal((1, 2, 7)).astype(np.float32)

    # LpPool: the default p=2 over 2-D windows with strides; p=3 over 1-D with pads.
    case(root, "lppool_2d_p2_strides", 11,
         [helper.make_node("LpPool", ["x"], ["y"], kernel_shape=[2, 3], strides=[2, 2])],
         [("x", x2)], [("y", lp_pool(x2, [2, 3], [2, 2], [0, 0, 0, 0], 2).astype(np.float32))])
    case(root, "lppool_1d_p3_pads", 11,
         [helper.make_node("LpPool", ["x"], ["y"], kernel_shape=[3], pads=[1, 2], p=3)],
         [("x", x1)], [("y", lp_pool(x1, [3], [1], [1, 2], 3).astype(np.float32))])
    case(root, "lppool_2d_same_upper", 11,
         [helper.make_node("LpPool", ["x"], ["y"], kernel_shape=[2, 2], auto_pad="SAME_UPPER")],
         [("x", x2)], [("y", lp_pool(x2, [2, 2], [1, 1], [0, 0, 1, 1], 2).astype(np.float32))])

    # GlobalLpPool: the whole spatial extent, p=2 and p=1.
    for p in (1, 2):
        y = (np.abs(x2.astype(np.float64)) ** p).sum(axis=(2, 3), keepdims=True) ** (1 / p)
        case(root, f"globallppool_p{p}", 2,
             [helper.make_node("GlobalLpPool", ["x"], ["y"], p=p)],
             [("x", x2)], [("y", y.astype(np.float32))])

    # GroupNormalization: scale and bias per group at opset 18, per channel from opset 21.
    x = RNG.standard_normal((2, 6, 3, 2)).astype(np.float32)
    x64 = x.astype(np.float64).reshape(2, 3, -1)
    norm = ((x64 - x64.mean(axis=2, keepdims=True)) / np.sqrt(x64.var(axis=2, keepdims=True) + 1e-4)).reshape(x.shape)
    sg = RNG.standard_normal((3,)).astype(np.float32)
    bg = RNG.standard_normal((3,)).astype(np.float32)
    y = norm * np.repeat(sg, 2).reshape(1, 6, 1, 1) + np.repeat(bg, 2).reshape(1, 6, 1, 1)
    case(root, "groupnorm_opset18_per_group", 18,
         [helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=3, epsilon=1e-4)],
         [("x", x), ("s", sg), ("b", bg)], [("y", y.astype(np.float32))])
    sc = RNG.standard_normal((6,)).astype(np.float32)
    bc = RNG.standard_normal((6,)).astype(np.float32)
    y = norm * sc.reshape(1, 6, 1, 1) + bc.reshape(1, 6, 1, 1)
    case(root, "groupnorm_opset21_per_channel", 21,
         [helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=3, epsilon=1e-4)],
         [("x", x), ("s", sc), ("b", bc)], [("y", y.astype(np.float32))])

    # Einsum beyond the suite's five: attention scores, the implicit output, broadcast
    # ellipsis batches, a trace, an outer product and a chain of three operands.
    e = lambda *shape: RNG.standard_normal(shape).astype(np.float32)
    for name, eq, ops in (
        ("einsum_attention", "bhid,bhjd->bhij", [e(2, 3, 4, 5), e(2, 3, 6, 5)]),
        ("einsum_implicit_matmul", "ij,jk", [e(3, 4), e(4, 2)]),
        ("einsum_ellipsis_broadcast", "...ij,...jk->...ik", [e(2, 1, 3, 4), e(3, 4, 2)]),
        ("einsum_trace", "ii", [e(4, 4)]),
        ("einsum_outer", "i,j->ij", [e(3), e(4)]),
        ("einsum_chain", "ij,jk,kl->il", [e(2, 3), e(3, 4), e(4, 5)]),
        ("einsum_ellipsis_middle", "i...j->j...i", [e(2, 3, 4, 5)]),
    ):
        names = [f"x{i}" for i in range(len(ops))]
        y = np.einsum(eq, *[o.astype(np.float64) for o in ops])
        case(root, name, 12, [helper.make_node("Einsum", names, ["y"], equation=eq)],
             list(zip(names, ops)), [("y", np.asarray(y).astype(np.float32))])

    # Conv where the suite has no case: a 1×1 kernel at stride 1 (the patches are the input
    # transposed), and at stride 2; a 3×2 kernel, dilated, padded unevenly, with groups.
    def conv(x, w, b, strides, pads, dil, group):
        x, w = x.astype(np.float64), w.astype(np.float64)
        xp = np.pad(x, [(0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])])
        m, cg, kh, kw = w.shape
        oh = (xp.shape[2] - dil[0] * (kh - 1) - 1) // strides[0] + 1
        ow = (xp.shape[3] - dil[1] * (kw - 1) - 1) // strides[1] + 1
        y = np.zeros((x.shape[0], m, oh, ow))
        for o in range(m):
            g = o // (m // group)
            for i in range(oh):
                for j in range(ow):
                    patch = xp[:, g * cg:(g + 1) * cg,
                               i * strides[0]:i * strides[0] + dil[0] * (kh - 1) + 1:dil[0],
                               j * strides[1]:j * strides[1] + dil[1] * (kw - 1) + 1:dil[1]]
                    y[:, o, i, j] = (patch * w[o]).sum(axis=(1, 2, 3)) + b[o]
        return y.astype(np.float32)

    x = e(2, 4, 5, 6)
    for name, w, attrs in (
        ("conv_1x1_pointwise", e(3, 4, 1, 1), dict(strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1)),
        ("conv_1x1_stride2", e(3, 4, 1, 1), dict(strides=[2, 2], pads=[0, 0, 0, 0], dilations=[1, 1], group=1)),
        ("conv_3x2_dilated_uneven_pads_groups", e(4, 2, 3, 2),
         dict(strides=[1, 2], pads=[2, 1, 0, 2], dilations=[2, 2], group=2)),
    ):
        b = e(w.shape[0])
        y = conv(x, w, b, attrs["strides"], attrs["pads"], attrs["dilations"], attrs["group"])
        case(root, name, 11, [helper.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)],
             [("x", x), ("w", w), ("b", b)], [("y", y)])
