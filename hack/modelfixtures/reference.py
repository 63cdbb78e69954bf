"""One-operator ai.onnx.ml models with the answers of ONNX's reference evaluator.

    /usr/bin/python3 hack/modelfixtures/modelfixtures.py reference --onnx-src DIR

python3-onnx 1.12 predates onnx.reference (1.13) and its ai.onnx.ml operators (1.14), so the
evaluator comes from an onnx source tree given by --onnx-src: DIR/onnx/reference is loaded into
the installed onnx package, after stubs for the few onnx 1.14 helpers it imports that 1.12 lacks
(float8 conversions, which these cases never reach). The committed answers were made with onnx
v1.14.0's evaluator carrying onnx main's ai.onnx.ml operators (onnx/onnx@f7546912), as
manifest.json records; the cases themselves are built here with onnx.helper, deterministically.

Each case exercises one operator and one behaviour: every tree node mode, NaN with and without
missing-value tracks, aggregate functions, base values, post transforms, string labels, integer
and double inputs, and the preprocessing and linear operators. The reference evaluator reads no
*_as_tensor attribute and has no ZipMap; behaviours where Freightcast follows onnxruntime rather
than the reference evaluator (see docs/model.md) have no case here either: the ortbench tests
and Go unit tests cover those.
"""

import json
import os
import sys
import types

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "internal", "model",
                   "testdata", "mlops")
ML = "ai.onnx.ml"


def load_reference(onnx_src):
    """The reference evaluator of an onnx source tree, over the installed onnx 1.12."""
    import onnx.defs
    import onnx.helper
    import onnx.mapping
    import onnx.numpy_helper

    def missing(*_args, **_kwargs):
        raise NotImplementedError("float8 conversions are not available with onnx 1.12")

    for name in ("float32_to_float8e4m3", "float32_to_float8e5m2", "float8e4m3_to_float32",
                 "float8e5m2_to_float32"):
        for mod in (onnx.helper, onnx.numpy_helper):
            if not hasattr(mod, name):
                setattr(mod, name, missing)
    for name, value in (("FLOAT8E4M3FN", 17), ("FLOAT8E4M3FNUZ", 18), ("FLOAT8E5M2", 19),
                        ("FLOAT8E5M2FNUZ", 20)):
        if not hasattr(TensorProto, name):
            setattr(TensorProto, name, value)
    if not hasattr(onnx.helper, "np_dtype_to_tensor_dtype"):
        onnx.helper.np_dtype_to_tensor_dtype = (
            lambda dt: onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[np.dtype(dt)])
        onnx.helper.tensor_dtype_to_np_dtype = lambda t: onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[t]
    onnx.defs.onnx = types.SimpleNamespace(defs=onnx.defs)
    onnx.__path__.append(os.path.join(onnx_src, "onnx"))
    from onnx.reference import ReferenceEvaluator
    return ReferenceEvaluator


# --- case builders ---

ELEM = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
        np.dtype(np.int64): TensorProto.INT64, np.dtype(np.int32): TensorProto.INT32,
        np.dtype(object): TensorProto.STRING}


class Case:
    """A one-node model and the inputs it is run on."""

    def __init__(self, model, feeds):
        self.model = model
        self.feeds = feeds


def _model(op, inputs, outputs, opset=1, **attrs):
    """A model of one ai.onnx.ml node. inputs: (name, array) pairs; outputs: (name, elem, shape)."""
    node = helper.make_node(op, [n for n, _ in inputs], [n for n, _, _ in outputs], domain=ML,
                            **attrs)
    ins = [helper.make_tensor_value_info(n, ELEM[a.dtype], list(a.shape)) for n, a in inputs]
    outs = [helper.make_tensor_value_info(n, e, s) for n, e, s in outputs]
    g = helper.make_graph([node], op.lower(), ins, outs)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                            helper.make_opsetid(ML, opset)],
                          producer_name="freightcast-modelfixtures")
    m.ir_version = 8
    return Case(m, dict(inputs))


def _rows(seed, n, cols, nan=0.0):
    rng = np.random.Generator(np.random.PCG64(seed))
    x = rng.normal(size=(n, cols)).astype(np.float32).round(1)
    if nan:
        x[rng.random(x.shape) < nan] = np.nan
    return x


# Two small trees over three features: tree 0 splits on feature 0 then 1, tree 1 on feature 2.
# Thresholds sit on the inputs' grid (values rounded to 0.1), so rows hit them exactly.
def _trees(mode, missing, thresholds=(0.1, -0.2, 0.3)):
    modes = [mode, mode, "LEAF", "LEAF", "LEAF", mode, "LEAF", "LEAF"]
    if isinstance(mode, list):
        modes = mode
    return dict(
        nodes_treeids=[0, 0, 0, 0, 0, 1, 1, 1],
        nodes_nodeids=[0, 1, 2, 3, 4, 0, 1, 2],
        nodes_featureids=[0, 1, 0, 0, 0, 2, 0, 0],
        nodes_modes=modes,
        nodes_values=[thresholds[0], thresholds[1], 0, 0, 0, thresholds[2], 0, 0],
        nodes_truenodeids=[1, 2, 0, 0, 0, 1, 0, 0],
        nodes_falsenodeids=[4, 3, 0, 0, 0, 2, 0, 0],
        nodes_missing_value_tracks_true=missing,
    )


LEAVES = [(0, 2), (0, 3), (0, 4), (1, 1), (1, 2)]


def _regressor(name, mode="BRANCH_LEQ", missing=(0,) * 8, targets=1, x=None, opset=1, **extra):
    attrs = _trees(mode, list(missing))
    weights = [1.5, -2.0, 0.25, 4.0, -0.5]
    attrs.update(target_treeids=[], target_nodeids=[], target_ids=[], target_weights=[])
    for k, (t, n) in enumerate(LEAVES):
        for tgt in range(targets):
            attrs["target_treeids"].append(t)
            attrs["target_nodeids"].append(n)
            attrs["target_ids"].append(tgt)
            attrs["target_weights"].append(weights[k] * (tgt + 1))
    attrs.update(n_targets=targets)
    attrs.update(extra)
    x = _rows(1, 40, 3, nan=0.1) if x is None else x
    return name, _model("TreeEnsembleRegressor", [("X", x)],
                        [("Y", TensorProto.FLOAT, [None, targets])], opset=opset, **attrs)


def _classifier(name, classes=3, post="NONE", labels=None, x=None, opset=1, mode="BRANCH_LEQ",
                weights=None, **extra):
    attrs = _trees(mode, [1, 0, 0, 0, 0, 1, 0, 0])
    weights = weights or [0.5, -1.0, 2.0, 0.75, -0.25]
    attrs.update(class_treeids=[], class_nodeids=[], class_ids=[], class_weights=[])
    for k, (t, n) in enumerate(LEAVES):
        for c in range(classes):
            attrs["class_treeids"].append(t)
            attrs["class_nodeids"].append(n)
            attrs["class_ids"].append(c)
            attrs["class_weights"].append(weights[k] * (1 + c) if c % 2 == 0 else -weights[k] / 2)
    labels = labels or list(range(10, 10 + max(classes, 2)))
    key = "classlabels_strings" if isinstance(labels[0], str) else "classlabels_int64s"
    attrs[key] = labels
    attrs.update(post_transform=post)
    attrs.update(extra)
    x = _rows(2, 40, 3, nan=0.1) if x is None else x
    elem = TensorProto.STRING if key == "classlabels_strings" else TensorProto.INT64
    return name, _model("TreeEnsembleClassifier", [("X", x)],
                        [("Y", elem, [None]), ("Z", TensorProto.FLOAT, [None, len(labels)])],
                        opset=opset, **attrs)


def _binary(name, post, weights, **extra):
    """The single-column binary form: two labels, every weight on class 0."""
    return _classifier(name, classes=1, post=post, labels=[0, 1], weights=weights, **extra)


def tree_cases():
    out = []
    for mode in ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ"):
        tag = mode.split("_")[1].lower()
        out.append(_regressor(f"te_reg_{tag}", mode))
        out.append(_regressor(f"te_reg_{tag}_missing", mode, missing=(1, 0, 0, 0, 0, 1, 0, 0)))
    out.append(_regressor("te_reg_mixed_modes",
                          ["BRANCH_LT", "BRANCH_GTE", "LEAF", "LEAF", "LEAF", "BRANCH_EQ", "LEAF",
                           "LEAF"], missing=(0, 1, 0, 0, 0, 1, 0, 0)))
    for agg in ("SUM", "AVERAGE", "MIN", "MAX"):
        out.append(_regressor(f"te_reg_{agg.lower()}", targets=2, aggregate_function=agg,
                              base_values=[0.5, -1.0]))
    out.append(_regressor("te_reg_double_input", x=_rows(3, 40, 3, nan=0.1).astype(np.float64)))
    for post in ("NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"):
        out.append(_classifier(f"te_cls_{post.lower()}", post=post,
                               **({"base_values": [0.1, 0.2, -0.3]} if post == "SOFTMAX" else {})))
    # PROBIT is defined on (0, 1): small weights around a base of 0.5 stay inside.
    out.append(_classifier("te_cls_probit", post="PROBIT", weights=[0.02, -0.04, 0.08, 0.03, -0.01],
                           base_values=[0.5, 0.5, 0.5]))
    out.append(_classifier("te_cls_strings", labels=["on_time", "minor_delay", "major_delay"],
                           post="SOFTMAX"))
    out.append(_classifier("te_cls_int32_input", x=(_rows(5, 40, 3) * 2).astype(np.int32)))
    out.append(_binary("te_cls_binary_logistic", "LOGISTIC", [0.5, -1.0, 2.0, 0.75, -0.25],
                       base_values=[-0.2]))
    out.append(_binary("te_cls_binary_votes", "NONE", [0.1, 0.3, 0.45, 0.2, 0.05]))
    return out


def linear_cases():
    x = _rows(6, 30, 4)
    coef = [0.5, -1.0, 0.25, 2.0, -0.5, 0.75, 1.5, -0.25, 1.0, 0.0, -1.5, 0.5]
    out = []
    for post in ("NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"):
        # PROBIT is defined on (0, 1): small coefficients around an intercept of 0.5.
        scale, icpt = (0.05, [0.5, 0.45, 0.55]) if post == "PROBIT" else (1, [0.1, -0.2, 0.3])
        out.append((f"lin_cls_{post.lower()}", _model(
            "LinearClassifier", [("X", x)],
            [("Y", TensorProto.INT64, [None]), ("Z", TensorProto.FLOAT, [None, 3])],
            coefficients=[c * scale for c in coef], intercepts=icpt, classlabels_ints=[1, 2, 3],
            multi_class=1, post_transform=post)))
    out.append(("lin_cls_binary_two_rows", _model(
        "LinearClassifier", [("X", x)],
        [("Y", TensorProto.STRING, [None]), ("Z", TensorProto.FLOAT, [None, 2])],
        coefficients=[-c for c in coef[:4]] + coef[:4], intercepts=[-0.1, 0.1],
        classlabels_strings=["on_time", "late"], post_transform="LOGISTIC")))
    out.append(("lin_cls_binary_one_row", _model(
        "LinearClassifier", [("X", x)],
        [("Y", TensorProto.INT64, [None]), ("Z", TensorProto.FLOAT, [None, 2])],
        coefficients=coef[:4], intercepts=[0.1], classlabels_ints=[0, 1],
        post_transform="LOGISTIC")))
    out.append(("lin_cls_double_input", _model(
        "LinearClassifier", [("X", x.astype(np.float64))],
        [("Y", TensorProto.INT64, [None]), ("Z", TensorProto.FLOAT, [None, 3])],
        coefficients=coef, intercepts=[0.1, -0.2, 0.3], classlabels_ints=[1, 2, 3],
        post_transform="SOFTMAX")))
    out.append(("lin_reg_one", _model(
        "LinearRegressor", [("X", x)], [("Y", TensorProto.FLOAT, [None, 1])],
        coefficients=coef[:4], intercepts=[0.5])))
    out.append(("lin_reg_two", _model(
        "LinearRegressor", [("X", x)], [("Y", TensorProto.FLOAT, [None, 2])],
        coefficients=coef[:8], intercepts=[0.5, -0.5], targets=2)))
    return out


def preprocess_cases():
    x = _rows(7, 30, 4)
    x[3] = 0  # a zero row for the normalizers
    xn = _rows(8, 30, 4, nan=0.2)
    ints = (_rows(9, 30, 4) * 3).astype(np.int64)
    cats = np.array([[0], [1], [2], [3], [7], [1]] * 5, dtype=np.int64)
    strs = np.array([["ocean"], ["air"], ["rail"], ["road"], ["barge"], ["air"]] * 5, dtype=object)
    f = TensorProto.FLOAT
    out = [
        ("scaler", _model("Scaler", [("X", x)], [("Y", f, [None, 4])],
                          offset=[0.1, -0.2, 0.3, 0.0], scale=[2.0, 0.5, 1.0, -1.0])),
        ("scaler_broadcast", _model("Scaler", [("X", x)], [("Y", f, [None, 4])],
                                    offset=[0.5], scale=[3.0])),
        ("binarizer", _model("Binarizer", [("X", x)], [("Y", f, [None, 4])], threshold=0.3)),
        ("imputer_nan", _model("Imputer", [("X", xn)], [("Y", f, [None, 4])],
                               imputed_value_floats=[1.0, 2.0, 3.0, 4.0],
                               replaced_value_float=float("nan"))),
        ("imputer_int64", _model("Imputer", [("X", ints)], [("Y", TensorProto.INT64, [None, 4])],
                                 imputed_value_int64s=[9], replaced_value_int64=0)),
        ("onehot_int64", _model("OneHotEncoder", [("X", cats)], [("Y", f, [None, 1, 5])],
                                cats_int64s=[0, 1, 2, 3, 4], zeros=1)),
        ("onehot_strings", _model("OneHotEncoder", [("X", strs)], [("Y", f, [None, 1, 4])],
                                  cats_strings=["ocean", "air", "rail", "road"], zeros=1)),
        ("afe", _model("ArrayFeatureExtractor",
                       [("X", x), ("Y", np.array([3, 0, 0], dtype=np.int64))],
                       [("Z", f, [None, 3])])),
        ("afe_strings", _model("ArrayFeatureExtractor",
                               [("X", strs), ("Y", np.array([0], dtype=np.int64))],
                               [("Z", TensorProto.STRING, [None, 1])])),
        ("feature_vectorizer", _model(
            "FeatureVectorizer", [("A", x), ("B", x[:, :2] * 2)], [("Y", f, [None, 6])],
            inputdimensions=[3, 3])),
    ]
    for norm in ("MAX", "L1", "L2"):
        out.append((f"normalizer_{norm.lower()}", _model("Normalizer", [("X", x)],
                                                         [("Y", f, [None, 4])], norm=norm)))
    modes = np.array(["ocean", "air", "rail", "road", "barge", "air"] * 4, dtype=object)
    grades = np.array([0, 1, 2, 5, 1, 0] * 4, dtype=np.int64)
    floats = np.array([0.5, 1.5, float("nan"), 2.5, -1.0, 1.5] * 4, dtype=np.float32)
    out += [
        ("label_string_to_int", _model("LabelEncoder", [("X", modes)],
                                       [("Y", TensorProto.INT64, [None])], opset=2,
                                       keys_strings=["ocean", "air", "rail", "road"],
                                       values_int64s=[0, 1, 2, 3], default_int64=-1)),
        ("label_int_to_string", _model("LabelEncoder", [("X", grades)],
                                       [("Y", TensorProto.STRING, [None])], opset=2,
                                       keys_int64s=[0, 1, 2],
                                       values_strings=["on_time", "minor", "major"],
                                       default_string="unknown")),
        ("label_float_to_float", _model("LabelEncoder", [("X", floats)],
                                        [("Y", TensorProto.FLOAT, [None])], opset=2,
                                        keys_floats=[0.5, 1.5, float("nan")],
                                        values_floats=[5.0, 15.0, -1.0], default_float=0.0)),
    ]
    return out


def svm_cases():
    """SVMClassifier and SVMRegressor: kernels, the binary form, one against one, the liblinear
    forms, one_class. No case has probabilities over three classes: the reference evaluator
    builds their coupling matrix with a dot product across each row where libsvm and
    onnxruntime multiply element by element (the scikit-learn fixtures cover those)."""
    f = TensorProto.FLOAT
    x = _rows(53, 16, 3)
    rng = np.random.Generator(np.random.PCG64(59))
    sv = rng.normal(size=(5, 3)).astype(np.float32).round(2).ravel()
    coef2 = rng.normal(size=(2, 5)).astype(np.float32).round(2).ravel()
    binary = dict(classlabels_ints=[0, 1], vectors_per_class=[2, 3], support_vectors=sv,
                  coefficients=[0.8, 0.5, -0.6, -0.4, -0.3], rho=[0.1], kernel_type="RBF",
                  kernel_params=[0.4, 0.0, 3.0])
    grades = dict(vectors_per_class=[2, 1, 2], support_vectors=sv, coefficients=coef2,
                  rho=[0.2, -0.3, 0.1])
    label, labels = ("Y", TensorProto.INT64, [None]), ("Y", TensorProto.STRING, [None])
    regressor = dict(n_supports=5, support_vectors=sv, coefficients=coef2[:5], rho=[0.3],
                     kernel_type="RBF", kernel_params=[0.4, 0.0, 3.0])

    def svc(name, lab, width, **attrs):
        return (name, _model("SVMClassifier", [("X", x)], [lab, ("Z", f, [None, width])],
                             **attrs))

    def svr(name, inp=x, **attrs):
        return (name, _model("SVMRegressor", [("X", inp)], [("Y", f, [None, 1])], **attrs))

    return [
        svc("svm_binary_rbf", label, 2, **binary),
        svc("svm_binary_probabilities", label, 2, prob_a=[-1.7], prob_b=[0.2], **binary),
        svc("svm_grade_poly", label, 3, classlabels_ints=[0, 1, 2], kernel_type="POLY",
            kernel_params=[0.3, 1.0, 3.0], **grades),
        svc("svm_grade_sigmoid_softmax", label, 3, classlabels_ints=[0, 1, 2],
            kernel_type="SIGMOID", kernel_params=[0.2, -0.1, 0.0], post_transform="SOFTMAX",
            **grades),
        svc("svm_grade_strings_rbf", labels, 3,
            classlabels_strings=["on_time", "minor", "major"], kernel_type="RBF",
            kernel_params=[0.5, 0.0, 3.0], **grades),
        svc("svm_linear_form", label, 2, classlabels_ints=[3, 7],
            coefficients=[0.5, -1.0, 0.25, -0.5, 1.0, 0.1], rho=[0.2]),
        svr("svm_regressor_rbf", **regressor),
        svr("svm_regressor_poly_double", inp=x.astype(np.float64),
            **dict(regressor, kernel_type="POLY", kernel_params=[0.3, 1.0, 2.0])),
        svr("svm_one_class", **dict(regressor, rho=[-0.5], one_class=1)),
        svr("svm_regressor_linear", coefficients=[0.5, -1.0, 2.0], rho=[0.1], n_supports=0),
    ]


def cases():
    return tree_cases() + linear_cases() + preprocess_cases() + svm_cases()


def _tensor(name, a):
    a = np.asarray(a)
    if a.dtype.kind in "OUS":
        return {"name": name, "datatype": "BYTES", "shape": list(a.shape),
                "data": [str(v) for v in a.ravel()]}
    if a.dtype.kind in "iu":
        dt = {np.dtype(np.int64): "INT64", np.dtype(np.int32): "INT32"}[a.dtype]
        return {"name": name, "datatype": dt, "shape": list(a.shape),
                "data": [int(v) for v in a.ravel()]}
    dt = "FP64" if a.dtype == np.float64 else "FP32"
    conv = float if dt == "FP64" else (lambda v: float(np.float32(v)))
    return {"name": name, "datatype": dt, "shape": list(a.shape),
            "data": [None if np.isnan(v) else conv(v) for v in a.ravel()]}


def main(onnx_src, out):
    if not onnx_src:
        print("reference needs --onnx-src, an onnx source tree with onnx/reference", file=sys.stderr)
        return 2
    from modelfixtures import _json
    evaluator = load_reference(onnx_src)
    out = os.path.join(out, "..", "mlops") if out.endswith("models") else out
    os.makedirs(out, exist_ok=True)
    manifest = {"generator": "hack/modelfixtures/reference.py",
                "command": "/usr/bin/python3 hack/modelfixtures/modelfixtures.py reference "
                           "--onnx-src DIR",
                "evaluator": "onnx.reference.ReferenceEvaluator of onnx v1.14.0 with the "
                             "ai.onnx.ml operators of onnx main (onnx/onnx@f7546912), over "
                             f"python3-onnx {onnx.__version__} with compatibility stubs",
                "numpy": np.__version__, "cases": []}
    for name, case in cases():
        model, feeds = case.model, case.feeds
        results = evaluator(model).run(None, feeds)
        blob = model.SerializeToString()
        with open(os.path.join(out, name + ".onnx"), "wb") as fh:
            fh.write(blob)
        expected = {"model": name,
                    "source": f"{model.graph.node[0].op_type}, ai.onnx.ml opset "
                              f"{model.opset_import[1].version}",
                    "inputs": [_tensor(k, v) for k, v in feeds.items()],
                    "outputs": [_tensor(o.name, r) for o, r in zip(model.graph.output, results)]}
        with open(os.path.join(out, name + ".json"), "wb") as fh:
            fh.write(_json(expected))
        manifest["cases"].append(name)
        print(f"{name}: ok", file=sys.stderr)
    with open(os.path.join(out, "manifest.json"), "wb") as fh:
        fh.write(_json(manifest))
    return 0
