#!/usr/bin/python3
"""Trains the model fixtures of internal/model/testdata/models and writes their expected answers.

    /usr/bin/python3 hack/modelfixtures/modelfixtures.py generate [--out DIR]
    /usr/bin/python3 hack/modelfixtures/modelfixtures.py check     # regenerate, compare bytes
    /usr/bin/python3 hack/modelfixtures/modelfixtures.py compare   # against the real converters
    /usr/bin/python3 hack/modelfixtures/modelfixtures.py reference --onnx-src DIR  # ml operators

Every model is trained with a fixed seed on the synthetic freight data (freightdata.py) by its
own framework (scikit-learn, XGBoost, PyTorch from Debian's python3 packages), converted the way
users convert it (skl2onnx/onnxmltools graphs reproduced by sklemit.py and xgbemit.py,
torch.onnx.export itself), and written with the framework's own answers on held-out rows
(predict, predict_proba, forward) as the expected values. manifest.json records the versions,
seed and command. See README.md.
"""

import argparse
import gzip
import hashlib
import json
import os
import platform
import sys
import tempfile

import numpy as np
import onnx
import sklearn
import torch
import xgboost
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (GradientBoostingClassifier, RandomForestClassifier,
                              RandomForestRegressor)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC, SVR, OneClassSVM
from sklearn.tree import DecisionTreeRegressor
from xgboost import XGBClassifier, XGBRegressor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import freightdata  # noqa: E402
import onnxemit  # noqa: E402
import sklemit  # noqa: E402
import torchnet  # noqa: E402
import tree5emit  # noqa: E402
import xgbemit  # noqa: E402

SEED = 20261127
TRAIN_ROWS = 4000
EXPECTED_ROWS = 48
# The support vector machines train on the first rows only: their files hold the support
# vectors, a good share of the training rows.
SVM_ROWS = 400
# A fixture larger than this is committed gzip-compressed.
MAX_FIXTURE_BYTES = 1 << 20
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "internal",
                           "model", "testdata", "models")
# skl2onnx fills opset_import from a Python set; the tool writes the main domain first.
OPSET_ORDER = ["", "ai.onnx.ml"]


class Data:
    """Training rows, held-out rows, and the variants the fixtures need."""

    def __init__(self):
        self.train = freightdata.generate(TRAIN_ROWS, SEED)
        self.test = freightdata.generate(EXPECTED_ROWS, SEED + 1)
        self.train_missing = freightdata.generate(TRAIN_ROWS, SEED + 2, missing=0.05)
        self.test_missing = freightdata.generate(EXPECTED_ROWS, SEED + 3, missing=0.15)


def _grades(y):
    return np.array(freightdata.GRADES)[y]


def _mode_columns(d):
    """The ColumnTransformer fixture's input: eight numeric columns, then the mode id."""
    return np.concatenate([d.numeric(), d.mode.reshape(-1, 1).astype(np.float32)], axis=1)


def _boundary_rows(X, thresholds, n=16, seed=SEED):
    """Rows whose feature value sits exactly on a split threshold, where LEQ and LT differ."""
    rng = np.random.Generator(np.random.PCG64(seed))
    rows = X[rng.integers(0, len(X), n)].copy()
    picks = rng.integers(0, len(thresholds), n)
    for r, p in zip(rows, picks):
        feature, value = thresholds[p]
        r[feature] = np.float32(value)
    return rows


def _onnx_thresholds(model_proto):
    """(feature, threshold) of every split of the first tree ensemble in a model."""
    for n in model_proto.graph.node:
        if n.op_type.startswith("TreeEnsemble"):
            a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
            return [(f, v) for f, v, m in zip(a["nodes_featureids"], a["nodes_values"],
                                              a["nodes_modes"]) if m != b"LEAF"]
    raise ValueError("no tree ensemble")


class Fixture:
    """One model: how it is trained, converted, and what inputs its expected answers cover."""

    def __init__(self, name, describe, train, convert, real=None, inputs=None, boundary=False,
                 outputs=None, bench=False):
        self.name = name
        self.describe = describe
        self.train = train
        self.convert = convert
        self.real = real
        self.inputs = inputs
        self.boundary = boundary
        self.outputs = outputs
        self.bench = bench


def _classifier_outputs(label, proba, zipmap):
    def outputs(model, X):
        classes = model.classes_
        pred = model.predict(X)
        probs = model.predict_proba(X).astype(np.float32)
        out = [_tensor(label, pred), _tensor(proba, probs)]
        if zipmap:
            out[1]["zipmap_labels"] = [c.item() if hasattr(c, "item") else c for c in classes]
        return out
    return outputs


def _decision_outputs(label, scores):
    """predict and decision_function: an SVC without probabilities."""
    def outputs(model, X):
        return [_tensor(label, model.predict(X)),
                _tensor(scores, model.decision_function(X).astype(np.float32))]
    return outputs


def _outlier_outputs(model, X):
    """predict (1 inlier, -1 outlier) and decision_function, as [N, 1] columns."""
    return [_tensor("label", model.predict(X).astype(np.int64).reshape(-1, 1)),
            _tensor("scores", model.decision_function(X).astype(np.float32).reshape(-1, 1))]


def _regressor_outputs(name):
    def outputs(model, X):
        return [_tensor(name, model.predict(X).astype(np.float32).reshape(-1, 1))]
    return outputs


def _tensor(name, values):
    values = np.asarray(values)
    if values.dtype.kind in "US" or values.dtype == object:
        datatype, data = "BYTES", [str(v) for v in values.ravel()]
    elif values.dtype.kind in "iu":
        datatype, data = "INT64", [int(v) for v in values.ravel()]
    else:
        datatype = "FP32"
        data = [None if np.isnan(v) else float(np.float32(v)) for v in values.ravel()]
    return {"name": name, "datatype": datatype, "shape": list(values.shape), "data": data}


def _skl(zipmap=True):
    def convert(model, width, name):
        return sklemit.SklConverter(model, width, zipmap=zipmap).convert(name, OPSET_ORDER)
    return convert


def _skl_real(zipmap=True):
    def real(conv, model, width, name):
        from skl2onnx.common.data_types import FloatTensorType
        options = None if zipmap else {id(model): {"zipmap": False}}
        if not zipmap and isinstance(model, Pipeline):
            options = {id(model.steps[-1][1]): {"zipmap": False}}
        return conv["sklearn"](model, name=name, options=options,
                               initial_types=[("input", FloatTensorType([None, width]))])
    return real


def _xgb_real(conv, model, width, name):
    from onnxmltools.convert.common.data_types import FloatTensorType
    return conv["xgboost"](model, name=name, initial_types=[("input", FloatTensorType([None, width]))])


def _xgb_in_skl_real(conv, model, width, name):
    conv["register_xgboost"]()
    return _skl_real()(conv, model, width, name)


def _scaled_logreg():
    return Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression(max_iter=1000))])


def fixtures(data):
    d, t = data.train, data.test
    dm, tm = data.train_missing, data.test_missing
    X, Xm = d.X, dm.X
    Xc, Xct = _mode_columns(dm), _mode_columns(tm)
    late, grade = d.late, d.grade
    xgb = dict(random_state=SEED, n_jobs=1, tree_method="hist")
    return _tree_and_linear_fixtures(data, xgb) + _svm_fixtures(data)


def _tree_and_linear_fixtures(data, xgb):
    d, t = data.train, data.test
    dm, tm = data.train_missing, data.test_missing
    X, Xm = d.X, dm.X
    Xc, Xct = _mode_columns(dm), _mode_columns(tm)
    late, grade = d.late, d.grade
    return [
        Fixture("xgb_binary",
                "XGBClassifier, 100 trees of depth ≤ 6, binary:logistic, trained with 5 % "
                "missing carrier and weather readings; onnxmltools.convert_xgboost",
                lambda: XGBClassifier(n_estimators=100, max_depth=6, learning_rate=0.1,
                                      **xgb).fit(Xm, dm.late),
                lambda m, w, n: xgbemit.classifier_model(m, w, n), _xgb_real,
                inputs=(tm.X,), boundary=True,
                outputs=_classifier_outputs("label", "probabilities", False), bench=True),
        Fixture("xgb_grade",
                "XGBClassifier, 3 delay grades, 40 rounds of depth ≤ 4 (120 trees), "
                "multi:softprob; onnxmltools.convert_xgboost",
                lambda: XGBClassifier(n_estimators=40, max_depth=4, **xgb).fit(Xm, dm.grade),
                lambda m, w, n: xgbemit.classifier_model(m, w, n), _xgb_real,
                inputs=(tm.X,), boundary=True,
                outputs=_classifier_outputs("label", "probabilities", False)),
        Fixture("xgb_delay_hours",
                "XGBRegressor, 60 trees of depth ≤ 5, reg:squarederror on delay hours; "
                "onnxmltools.convert_xgboost",
                lambda: XGBRegressor(n_estimators=60, max_depth=5, **xgb).fit(Xm, dm.delay_hours),
                lambda m, w, n: xgbemit.regressor_model(m, w, n), _xgb_real,
                inputs=(tm.X,), boundary=True, outputs=_regressor_outputs("variable")),
        Fixture("xgb_binary_zipmap",
                "XGBClassifier (20 trees, depth ≤ 4) in a scikit-learn Pipeline, converted by "
                "skl2onnx with onnxmltools' converter registered: ZipMap output",
                lambda: Pipeline([("xgb", XGBClassifier(n_estimators=20, max_depth=4, **xgb))]
                                 ).fit(Xm, dm.late),
                _skl(), _xgb_in_skl_real, inputs=(tm.X,), boundary=True,
                outputs=_classifier_outputs("output_label", "output_probability", True)),
        Fixture("skl_logreg_binary",
                "Pipeline(StandardScaler, LogisticRegression) on late; skl2onnx with ZipMap",
                lambda: _scaled_logreg().fit(X, late),
                _skl(), _skl_real(), inputs=(t.X,),
                outputs=_classifier_outputs("output_label", "output_probability", True)),
        Fixture("skl_logreg_grade",
                "Pipeline(StandardScaler, LogisticRegression) on 3 delay grades (multinomial); "
                "skl2onnx with ZipMap",
                lambda: _scaled_logreg().fit(X, grade),
                _skl(), _skl_real(), inputs=(t.X,),
                outputs=_classifier_outputs("output_label", "output_probability", True)),
        Fixture("skl_logreg_grade_nozipmap",
                "the same multinomial pipeline converted with zipmap=False",
                lambda: _scaled_logreg().fit(X, grade),
                _skl(zipmap=False), _skl_real(zipmap=False), inputs=(t.X,),
                outputs=_classifier_outputs("label", "probabilities", False)),
        Fixture("skl_rf_binary",
                "RandomForestClassifier, 20 trees of depth ≤ 6, on late; skl2onnx with ZipMap",
                lambda: RandomForestClassifier(n_estimators=20, max_depth=6,
                                               random_state=SEED).fit(X, late),
                _skl(), _skl_real(), inputs=(t.X,), boundary=True,
                outputs=_classifier_outputs("output_label", "output_probability", True)),
        Fixture("skl_rf_grade",
                "RandomForestClassifier, 15 trees of depth ≤ 6, on string delay grades "
                "(on_time, minor_delay, major_delay); skl2onnx with ZipMap",
                lambda: RandomForestClassifier(n_estimators=15, max_depth=6,
                                               random_state=SEED).fit(X, _grades(grade)),
                _skl(), _skl_real(), inputs=(t.X,), boundary=True,
                outputs=_classifier_outputs("output_label", "output_probability", True)),
        Fixture("skl_gb_binary_nozipmap",
                "GradientBoostingClassifier, 30 trees of depth ≤ 3, on late; skl2onnx with "
                "zipmap=False",
                lambda: GradientBoostingClassifier(n_estimators=30, max_depth=3,
                                                   random_state=SEED).fit(X, late),
                _skl(zipmap=False), _skl_real(zipmap=False), inputs=(t.X,), boundary=True,
                outputs=_classifier_outputs("label", "probabilities", False)),
        Fixture("skl_gb_grade",
                "GradientBoostingClassifier, 15 rounds × 3 grades of depth ≤ 3; skl2onnx with "
                "ZipMap",
                lambda: GradientBoostingClassifier(n_estimators=15, max_depth=3,
                                                   random_state=SEED).fit(X, grade),
                _skl(), _skl_real(), inputs=(t.X,), boundary=True,
                outputs=_classifier_outputs("output_label", "output_probability", True)),
        Fixture("skl_rf_delay_hours",
                "RandomForestRegressor, 20 trees of depth ≤ 6, on delay hours; skl2onnx",
                lambda: RandomForestRegressor(n_estimators=20, max_depth=6,
                                              random_state=SEED).fit(X, d.delay_hours),
                _skl(), _skl_real(), inputs=(t.X,), boundary=True,
                outputs=_regressor_outputs("variable")),
        Fixture("skl_dt_delay_hours",
                "DecisionTreeRegressor of depth ≤ 8 on delay hours; skl2onnx",
                lambda: DecisionTreeRegressor(max_depth=8, random_state=SEED).fit(
                    X, d.delay_hours),
                _skl(), _skl_real(), inputs=(t.X,), boundary=True,
                outputs=_regressor_outputs("variable")),
        Fixture("skl_impute_onehot",
                "Pipeline(ColumnTransformer(SimpleImputer(median) + StandardScaler on 8 numeric "
                "columns with missing readings, OneHotEncoder on the mode id), "
                "LogisticRegression) on late; skl2onnx with ZipMap",
                lambda: Pipeline([
                    ("columns", ColumnTransformer([
                        ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")),
                                              ("scale", StandardScaler())]), list(range(8))),
                        ("mode", OneHotEncoder(handle_unknown="ignore"), [8])])),
                    ("lr", LogisticRegression(max_iter=1000))]).fit(Xc, dm.late),
                _skl(), _skl_real(), inputs=(Xct,),
                outputs=_classifier_outputs("output_label", "output_probability", True)),
    ]


def _svm_fixtures(data):
    s, t = data.train.rows(slice(0, SVM_ROWS)), data.test
    svc = dict(kernel="rbf", random_state=SEED)
    return [
        Fixture("skl_svc_binary",
                f"SVC (RBF, probability=True) on late, {SVM_ROWS} training rows; skl2onnx "
                "with ZipMap",
                lambda: SVC(probability=True, **svc).fit(s.X, s.late),
                _skl(), _skl_real(), inputs=(t.X,),
                outputs=_classifier_outputs("output_label", "output_probability", True)),
        Fixture("skl_svc_grade",
                f"SVC (RBF, probability=True) on 3 delay grades, one against one, {SVM_ROWS} "
                "training rows; skl2onnx with ZipMap",
                lambda: SVC(probability=True, **svc).fit(s.X, s.grade),
                _skl(), _skl_real(), inputs=(t.X,),
                outputs=_classifier_outputs("output_label", "output_probability", True)),
        Fixture("skl_svc_grade_ovo_nozipmap",
                f"SVC (RBF, decision_function_shape='ovo') on 3 delay grades, {SVM_ROWS} "
                "training rows: decision values; skl2onnx with zipmap=False",
                lambda: SVC(decision_function_shape="ovo", **svc).fit(s.X, s.grade),
                _skl(zipmap=False), _skl_real(zipmap=False), inputs=(t.X,),
                outputs=_decision_outputs("label", "probabilities")),
        Fixture("skl_svc_grade_ovr_nozipmap",
                f"SVC (RBF, scikit-learn's defaults) on 3 delay grades, {SVM_ROWS} training "
                "rows: the 'ovr' decision function skl2onnx computes after the SVM; "
                "zipmap=False",
                lambda: SVC(**svc).fit(s.X, s.grade),
                _skl(zipmap=False), _skl_real(zipmap=False), inputs=(t.X,),
                outputs=_decision_outputs("label", "probabilities")),
        Fixture("skl_svr_delay_hours",
                f"SVR (RBF, C=10) on delay hours, {SVM_ROWS} training rows; skl2onnx",
                lambda: SVR(kernel="rbf", C=10.0).fit(s.X, s.delay_hours),
                _skl(), _skl_real(), inputs=(t.X,), outputs=_regressor_outputs("variable")),
        Fixture("skl_ocsvm_outliers",
                f"OneClassSVM (RBF, nu=0.05) on {SVM_ROWS} legs: unusual shipments; skl2onnx",
                lambda: OneClassSVM(nu=0.05).fit(s.X),
                _skl(), _skl_real(), inputs=(t.X,), outputs=_outlier_outputs),
        Fixture("skl_scaled_svc_grade",
                "Pipeline(StandardScaler, SVC (POLY of degree 3, probability=True)) on string "
                f"delay grades, {SVM_ROWS} training rows; skl2onnx with ZipMap",
                lambda: Pipeline([("scale", StandardScaler()),
                                  ("svc", SVC(kernel="poly", degree=3, probability=True,
                                              random_state=SEED))]).fit(s.X, _grades(s.grade)),
                _skl(), _skl_real(), inputs=(t.X,),
                outputs=_classifier_outputs("output_label", "output_probability", True)),
    ]


def _rf_bench(data):
    """The benchmark's scikit-learn RandomForest: 50 trees of depth ≤ 10 (binary, late)."""
    def train():
        big = freightdata.generate(20000, SEED + 4)
        return RandomForestClassifier(n_estimators=50, max_depth=10, random_state=SEED).fit(
            big.X, big.late)

    return Fixture("skl_rf_bench", "RandomForestClassifier, 50 trees of depth ≤ 10, on 20,000 "
                   "legs (late); skl2onnx with zipmap=False: the benchmark model",
                   train, _skl(zipmap=False), _skl_real(zipmap=False),
                   inputs=(data.test.X,), boundary=True,
                   outputs=_classifier_outputs("label", "probabilities", False), bench=True)


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def _expected(fx, model, proto, data):
    X = fx.inputs[0]
    if fx.boundary:
        X = np.concatenate([X, _boundary_rows(X, _onnx_thresholds(proto))])
    return {"model": fx.name, "source": fx.describe,
            "inputs": [_tensor("input", X)], "outputs": fx.outputs(model, X)}


def _torch_fixtures(data, out, manifest):
    net = torchnet.train(data.train, SEED)
    numeric, mode = data.test.numeric(), data.test.mode
    want = torchnet.forward(net, numeric, mode)
    for opset in (13, 17):
        name = f"torch_tabular_opset{opset}"
        blob = torchnet.export(net, opset)
        _write(os.path.join(out, name + ".onnx"), blob)
        expected = {"model": name,
                    "source": f"PyTorch TabularNet (Embedding, LayerNorm, GELU, Linear, "
                              f"Sigmoid) exported by torch.onnx.export at opset {opset}",
                    "inputs": [_tensor("numeric", numeric), _tensor("transport_mode", mode)],
                    "outputs": [_tensor("delay_risk", want)]}
        _write(os.path.join(out, name + ".json"), _json(expected))
        manifest["fixtures"].append(_entry(name, expected["source"], blob, "torch.onnx.export "
                                           f"(torch {torch.__version__}), opset {opset}, dynamic "
                                           "batch axes", bench=False))


def _json(obj):
    """Indented JSON whose innermost objects and lists (tensors, fixtures) take one line each."""
    def dump(v, depth):
        if isinstance(v, dict) and depth < 1:
            items = [f'{json.dumps(k)}: {dump(x, depth + 1)}' for k, x in v.items()]
            return "{\n " + ",\n ".join(items) + "\n}"
        if isinstance(v, list) and depth < 2 and any(isinstance(x, dict) for x in v):
            return "[\n  " + ",\n  ".join(dump(x, depth + 1) for x in v) + "\n ]"
        return json.dumps(v, ensure_ascii=False)
    return (dump(obj, 0) + "\n").encode()


def _entry(name, describe, blob, converter, bench, file=None):
    return {"name": name, "file": file or name + ".onnx", "expected": name + ".json",
            "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest(),
            "model": describe, "converter": converter, "benchmark": bench}


def versions():
    return {"python": platform.python_version(), "numpy": np.__version__,
            "scikit-learn": sklearn.__version__, "xgboost": xgboost.__version__,
            "torch": torch.__version__, "onnx": onnx.__version__}


def generate(out):
    os.makedirs(out, exist_ok=True)
    data = Data()
    manifest = {
        "generator": "hack/modelfixtures/modelfixtures.py",
        "command": "/usr/bin/python3 hack/modelfixtures/modelfixtures.py generate",
        "seed": SEED, "training_rows": TRAIN_ROWS, "expected_rows": EXPECTED_ROWS,
        "data": "freightdata.py: the generative process of docs/model.md, numpy PCG64",
        "versions": versions(),
        "converters": {
            "skl2onnx": f"{onnxemit.SKL2ONNX_VERSION} graphs reproduced by sklemit.py "
                        f"(main opset {onnxemit.skl2onnx_target_opset()}, the most onnx "
                        f"{onnx.__version__} defines)",
            "onnxmltools": f"{onnxemit.ONNXMLTOOLS_VERSION} graphs reproduced by xgbemit.py "
                           f"(target opset {onnxemit.onnxmltools_target_opset()})"},
        "fixtures": []}
    for fx in fixtures(data) + [_rf_bench(data)]:
        model = fx.train()
        width = fx.inputs[0].shape[1]
        proto = fx.convert(model, width, fx.name)
        blob = proto.SerializeToString()
        file = fx.name + ".onnx"
        if len(blob) > MAX_FIXTURE_BYTES:
            # The benchmark forest is committed compressed (mtime 0, so the bytes reproduce).
            file += ".gz"
            _write(os.path.join(out, file), gzip.compress(blob, mtime=0))
        else:
            _write(os.path.join(out, file), blob)
        _write(os.path.join(out, fx.name + ".json"), _json(_expected(fx, model, proto, data)))
        converter = ("onnxmltools " + onnxemit.ONNXMLTOOLS_VERSION if fx.real is _xgb_real
                     else "skl2onnx " + onnxemit.SKL2ONNX_VERSION) + " (reproduced)"
        manifest["fixtures"].append(_entry(fx.name, fx.describe, blob, converter, fx.bench,
                                           file))
        print(f"{fx.name}: {len(blob)} bytes", file=sys.stderr)
    _torch_fixtures(data, out, manifest)
    tree5emit.generate(sys.modules[__name__], data, out, manifest)
    _write(os.path.join(out, "manifest.json"), _json(manifest))


def check(out):
    """Regenerates into a temporary folder and reports every file that differs."""
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp)
        bad = []
        for name in sorted(os.listdir(tmp)):
            with open(os.path.join(tmp, name), "rb") as f:
                fresh = f.read()
            try:
                with open(os.path.join(out, name), "rb") as f:
                    old = f.read()
            except FileNotFoundError:
                old = None
            if fresh != old:
                bad.append(name)
    if bad:
        print("fixtures differ from a fresh generation: " + ", ".join(bad), file=sys.stderr)
        return 1
    print("fixtures are reproducible", file=sys.stderr)
    return 0


def compare():
    import compare as cmp
    convert_sklearn, convert_xgboost, register_xgboost = cmp.real_converters()
    conv = {"sklearn": convert_sklearn, "xgboost": convert_xgboost,
            "register_xgboost": register_xgboost}
    data = Data()
    failed = 0
    for fx in fixtures(data) + [_rf_bench(data)]:
        model = fx.train()
        width = fx.inputs[0].shape[1]
        diffs = cmp.differences(fx.convert(model, width, fx.name),
                                fx.real(conv, model, width, fx.name))
        print(f"{fx.name}: {'same as the real converter' if not diffs else 'DIFFERS'}")
        for d in diffs[:20]:
            print("  " + d)
        failed += bool(diffs)
    return 1 if failed else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["generate", "check", "compare", "reference"])
    p.add_argument("--out", default=os.path.normpath(DEFAULT_OUT))
    p.add_argument("--onnx-src", help="reference: an onnx source tree holding onnx/reference")
    args = p.parse_args()
    if args.command == "generate":
        generate(args.out)
        return 0
    if args.command == "check":
        return check(args.out)
    if args.command == "compare":
        return compare()
    import reference
    return reference.main(args.onnx_src, args.out)


if __name__ == "__main__":
    sys.exit(main())
