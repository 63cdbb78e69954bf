"""Cases for what the ONNX 1.12 suite's RNN, GRU and LSTM cases leave out: both directions,
GRU's linear_before_reset, clip, other activations, sequence_lens with reverse. numpy computes
the answers in float64 from the equations in ONNX's Operators.md. Called by opcases.py."""

import numpy as np
from onnx import helper

RNG = np.random.default_rng(20261204)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def run(cell, x, w, r, b, hidden, reverse_dirs, lens=None, clip=None, lbr=False, f=sigmoid, g=np.tanh):
    """x [seq, batch, in]; w [dirs, G*H, in]; r [dirs, G*H, H]; b [dirs, 2*G*H].
    Returns Y [seq, dirs, batch, H] and Y_h [dirs, batch, H]."""
    seq, batch, _ = x.shape
    dirs = w.shape[0]
    lens = lens if lens is not None else [seq] * batch
    y = np.zeros((seq, dirs, batch, hidden))
    yh = np.zeros((dirs, batch, hidden))
    cl = (lambda v: np.clip(v, -clip, clip)) if clip else (lambda v: v)
    for d in range(dirs):
        wb, rb = b[d, :b.shape[1] // 2], b[d, b.shape[1] // 2:]
        for bt in range(batch):
            h = np.zeros(hidden)
            c = np.zeros(hidden)
            steps = range(lens[bt])
            if reverse_dirs[d]:
                steps = reversed(range(lens[bt]))
            for t in steps:
                xw = w[d] @ x[t, bt] + wb
                if cell == "RNN":
                    h = g(cl(xw + r[d] @ h + rb))
                elif cell == "GRU":
                    H = hidden
                    z = f(cl(xw[:H] + r[d][:H] @ h + rb[:H]))
                    rr = f(cl(xw[H:2 * H] + r[d][H:2 * H] @ h + rb[H:2 * H]))
                    if lbr:
                        hh = g(cl(xw[2 * H:] + rr * (r[d][2 * H:] @ h + rb[2 * H:])))
                    else:
                        hh = g(cl(xw[2 * H:] + r[d][2 * H:] @ (rr * h) + rb[2 * H:]))
                    h = (1 - z) * hh + z * h
                else:
                    H = hidden
                    pre = xw + r[d] @ h + rb
                    i, o, fg, cc = (cl(pre[k * H:(k + 1) * H]) for k in range(4))
                    c = f(fg) * c + f(i) * g(cc)
                    h = f(o) * g(c)
                y[t, d, bt] = h
            yh[d, bt] = h
    return y, yh


def cases(case, root):
    seq, batch, inp, hid = 4, 2, 3, 5
    x = RNG.standard_normal((seq, batch, inp)).astype(np.float32)

    def weights(gates, dirs):
        w = (RNG.standard_normal((dirs, gates * hid, inp)) * 0.5).astype(np.float32)
        r = (RNG.standard_normal((dirs, gates * hid, hid)) * 0.5).astype(np.float32)
        b = (RNG.standard_normal((dirs, 2 * gates * hid)) * 0.5).astype(np.float32)
        return w, r, b

    f64 = lambda a: a.astype(np.float64)
    for cell, gates in (("RNN", 1), ("GRU", 3), ("LSTM", 4)):
        w, r, b = weights(gates, 2)
        y, yh = run(cell, f64(x), f64(w), f64(r), f64(b), hid, [False, True])
        case(root, f"{cell.lower()}_bidirectional", 14,
             [helper.make_node(cell, ["x", "w", "r", "b"], ["y", "yh"], hidden_size=hid, direction="bidirectional")],
             [("x", x), ("w", w), ("r", r), ("b", b)],
             [("y", y.astype(np.float32)), ("yh", yh.astype(np.float32))])

    # GRU with linear_before_reset and clip, reversed over sequences of different lengths.
    w, r, b = weights(3, 1)
    lens = np.array([3, 1], dtype=np.int32)
    y, yh = run("GRU", f64(x), f64(w), f64(r), f64(b), hid, [True], lens=list(lens), clip=0.8, lbr=True)
    case(root, "gru_reverse_lbr_clip_seqlens", 14,
         [helper.make_node("GRU", ["x", "w", "r", "b", "l"], ["y", "yh"], hidden_size=hid, direction="reverse",
                           linear_before_reset=1, clip=0.8)],
         [("x", x), ("w", w), ("r", r), ("b", b), ("l", lens)],
         [("y", y.astype(np.float32)), ("yh", yh.astype(np.float32))])

    # RNN with Relu, and LSTM with HardSigmoid gates (alpha 0.3, beta 0.4) and Softsign.
    w, r, b = weights(1, 1)
    y, yh = run("RNN", f64(x), f64(w), f64(r), f64(b), hid, [False], g=lambda v: np.maximum(v, 0))
    case(root, "rnn_relu", 14,
         [helper.make_node("RNN", ["x", "w", "r", "b"], ["y", "yh"], hidden_size=hid, activations=["Relu"])],
         [("x", x), ("w", w), ("r", r), ("b", b)],
         [("y", y.astype(np.float32)), ("yh", yh.astype(np.float32))])
    w, r, b = weights(4, 1)
    hs = lambda v: np.clip(0.3 * v + 0.4, 0, 1)
    ss = lambda v: v / (1 + np.abs(v))
    y, yh = run("LSTM", f64(x), f64(w), f64(r), f64(b), hid, [False], f=hs, g=ss)
    case(root, "lstm_hardsigmoid_softsign", 14,
         [helper.make_node("LSTM", ["x", "w", "r", "b"], ["y", "yh"], hidden_size=hid,
                           activations=["HardSigmoid", "Softsign", "Softsign"],
                           activation_alpha=[0.3], activation_beta=[0.4])],
         [("x", x), ("w", w), ("r", r), ("b", b)],
         [("y", y.astype(np.float32)), ("yh", yh.astype(np.float32))])
