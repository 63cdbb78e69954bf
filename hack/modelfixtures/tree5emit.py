"""TreeEnsemble (ai.onnx.ml 5) and CategoryMapper fixtures, with their expected answers.

Neither skl2onnx 1.21.0 nor onnxmltools 1.17.0 writes TreeEnsemble: their sources
(onnx/sklearn-onnx@33c9f268, onnx/onnxmltools@0934091a) emit only TreeEnsembleRegressor and
TreeEnsembleClassifier, whatever ai.onnx.ml opset they target. So the trained models are first
converted as those converters convert them (sklemit.py, xgbemit.py) and the tree node is then
rewritten into TreeEnsemble the way ONNX's specification of the operator describes
(`to_tree_ensemble`): the regressor "maps directly" (branch nodes become nodes_*, leaves
leaf_*), a classifier becomes TreeEnsemble of its raw scores followed by ArgMax. TreeEnsemble
has no base values, so each target's base value becomes a one-leaf tree in front of the others
(the specification's one-leaf tree: one node whose two branches name the same leaf), which adds
it under SUM before the post transform, as base values are added.

The BRANCH_MEMBER models are built by hand, and their answers come from `walk`, a plain walk of
the trees written from the specification, not from any runtime.
"""

import math

import numpy as np
from onnx import TensorProto, helper
from xgboost import XGBClassifier, XGBRegressor
from sklearn.ensemble import GradientBoostingClassifier

import sklemit
import xgbemit

# ai.onnx.ml 5 came with onnx 1.16: main opset 21, IR version 10.
MAIN_OPSET = 21
IR_VERSION = 10
PRODUCER = "freightcast hack/modelfixtures tree5emit.py"

MODES = {"BRANCH_LEQ": 0, "BRANCH_LT": 1, "BRANCH_GTE": 2, "BRANCH_GT": 3, "BRANCH_EQ": 4,
         "BRANCH_NEQ": 5, "BRANCH_MEMBER": 6}
AGGREGATES = {"AVERAGE": 0, "SUM": 1, "MIN": 2, "MAX": 3}
POSTS = {"NONE": 0, "SOFTMAX": 1, "LOGISTIC": 2, "SOFTMAX_ZERO": 3, "PROBIT": 4}


def _tree_node(proto):
    for n in proto.graph.node:
        if n.op_type in ("TreeEnsembleRegressor", "TreeEnsembleClassifier"):
            return n.op_type, {a.name: helper.get_attribute_value(a) for a in n.attribute}
    raise ValueError("no tree ensemble")


def to_tree_ensemble(old, post_transform=None):
    """The TreeEnsemble attributes of a TreeEnsembleRegressor/Classifier's attributes (a dict).

    Every leaf must carry one weight (gradient boosting's trees do); base values need SUM."""
    op, a = old
    prefix = "class" if op == "TreeEnsembleClassifier" else "target"
    n_targets = a["n_targets"] if prefix == "target" else len(
        a.get("classlabels_int64s") or a.get("classlabels_strings"))
    if prefix == "class" and n_targets == 2 and set(a["class_ids"]) == {0}:
        n_targets = 1  # the binary classifier's single column: the second class's score
    aggregate = a.get("aggregate_function", b"SUM").decode()
    post = post_transform or a.get("post_transform", b"NONE").decode()
    modes = [m.decode() for m in a["nodes_modes"]]
    missing = a.get("nodes_missing_value_tracks_true") or [0] * len(modes)
    weights = {}
    for t, nid, k, w in zip(a[prefix + "_treeids"], a[prefix + "_nodeids"], a[prefix + "_ids"],
                            a[prefix + "_weights"]):
        if (t, nid) in weights:
            raise NotImplementedError("a leaf with several weights")
        weights[(t, nid)] = (k, w)
    out = {k: [] for k in ("nodes_featureids", "nodes_modes", "nodes_splits",
                           "nodes_truenodeids", "nodes_trueleafs", "nodes_falsenodeids",
                           "nodes_falseleafs", "nodes_missing_value_tracks_true",
                           "leaf_targetids", "leaf_weights", "tree_roots")}

    def one_leaf_tree(target, weight):
        leaf = len(out["leaf_weights"])
        out["tree_roots"].append(len(out["nodes_modes"]))
        for key, v in (("nodes_featureids", 0), ("nodes_modes", 0), ("nodes_splits", 0.0),
                       ("nodes_truenodeids", leaf), ("nodes_trueleafs", 1),
                       ("nodes_falsenodeids", leaf), ("nodes_falseleafs", 1),
                       ("nodes_missing_value_tracks_true", 0)):
            out[key].append(v)
        out["leaf_targetids"].append(target)
        out["leaf_weights"].append(weight)

    # Base values first: a one-leaf tree's root and leaf then have the same index, which is how
    # onnxruntime and ONNX's reference evaluator read a one-leaf tree too.
    base = list(a.get("base_values") or [])
    if base:
        if aggregate != "SUM":
            raise NotImplementedError("base values under " + aggregate)
        for k, b in enumerate(base):
            one_leaf_tree(k, b)
    # Each old node's place: ("node", i) or ("leaf", j), by (tree, node id).
    place = {}
    trees = []
    for t, nid, m in zip(a["nodes_treeids"], a["nodes_nodeids"], modes):
        if t not in trees:
            trees.append(t)
        if m == "LEAF":
            k, w = weights.get((t, nid), (0, 0.0))
            place[(t, nid)] = ("leaf", len(out["leaf_weights"]))
            out["leaf_targetids"].append(k)
            out["leaf_weights"].append(w)
        else:
            place[(t, nid)] = ("node", None)
    # Branch nodes in attribute order.
    position = {}
    for t, nid, m in zip(a["nodes_treeids"], a["nodes_nodeids"], modes):
        if m != "LEAF":
            position[(t, nid)] = len(position) + len(out["nodes_modes"])
    roots = {}
    for i, (t, nid, m) in enumerate(zip(a["nodes_treeids"], a["nodes_nodeids"], modes)):
        roots.setdefault(t, (nid, m))
        if m == "LEAF":
            continue
        out["nodes_featureids"].append(a["nodes_featureids"][i])
        out["nodes_modes"].append(MODES[m])
        out["nodes_splits"].append(a["nodes_values"][i])
        out["nodes_missing_value_tracks_true"].append(missing[i])
        for side, child in (("true", a["nodes_truenodeids"][i]),
                            ("false", a["nodes_falsenodeids"][i])):
            kind, leaf = place[(t, child)]
            out[f"nodes_{side}leafs"].append(int(kind == "leaf"))
            out[f"nodes_{side}nodeids"].append(leaf if kind == "leaf" else position[(t, child)])
    for t in trees:
        nid, m = roots[t]
        if m == "LEAF":
            raise NotImplementedError("a tree that is one leaf")
        out["tree_roots"].append(position[(t, nid)])
    out["n_targets"] = n_targets
    out["aggregate_function"] = AGGREGATES[aggregate]
    out["post_transform"] = POSTS[post]
    return out


def _tensor_attrs(attrs, elem):
    """Turns the tensor attributes of TreeEnsemble into TensorProtos of elem (FLOAT or DOUBLE)."""
    a = dict(attrs)
    a["nodes_modes"] = helper.make_tensor("nodes_modes", TensorProto.UINT8,
                                          [len(a["nodes_modes"])], a["nodes_modes"])
    for name in ("nodes_splits", "leaf_weights", "membership_values"):
        if name in a:
            a[name] = helper.make_tensor(name, elem, [len(a[name])], a[name])
    return a


def _model(nodes, inputs, outputs, name):
    graph = helper.make_graph(nodes, name, inputs, outputs)
    return helper.make_model(graph, producer_name=PRODUCER, ir_version=IR_VERSION,
                             opset_imports=[helper.make_opsetid("", MAIN_OPSET),
                                            helper.make_opsetid("ai.onnx.ml", 5)])


def tree_ensemble_model(attrs, width, name, output, n_out, elem=TensorProto.FLOAT, argmax=None):
    """One TreeEnsemble over input [None, width]; argmax names an ArgMax label output."""
    nodes = [helper.make_node("TreeEnsemble", ["input"], [output], domain="ai.onnx.ml",
                              name="TreeEnsemble", **_tensor_attrs(attrs, elem))]
    outputs = [helper.make_tensor_value_info(output, elem, [None, n_out])]
    if argmax:
        nodes.append(helper.make_node("ArgMax", [output], [argmax], name="ArgMax", axis=1,
                                      keepdims=0))
        outputs.insert(0, helper.make_tensor_value_info(argmax, TensorProto.INT64, [None]))
    return _model(nodes, [helper.make_tensor_value_info("input", elem, [None, width])],
                  outputs, name)


# The plain walk of the specification, for the hand-built models' answers.

def _sets(attrs):
    """The set of each BRANCH_MEMBER node, in node order, from NaN-separated values."""
    sets, cur = [], set()
    for v in attrs.get("membership_values", []):
        if math.isnan(v):
            sets.append(cur)
            cur = set()
        else:
            cur.add(v)
    it = iter(sets)
    return {i: next(it) for i, m in enumerate(attrs["nodes_modes"]) if m == 6}


def _goes_true(mode, v, split, members, missing):
    if math.isnan(v) and missing:
        return True
    return {0: lambda: v <= split, 1: lambda: v < split, 2: lambda: v >= split,
            3: lambda: v > split, 4: lambda: v == split, 5: lambda: v != split,
            6: lambda: v in members}[mode]()


def walk(attrs, row):
    """One row's outputs: each tree walked from its root to a leaf, the leaves' weights
    aggregated per target (SUM or AVERAGE; these models' post transform is NONE)."""
    sets = _sets(attrs)
    votes = [[] for _ in range(attrs["n_targets"])]
    missing = attrs.get("nodes_missing_value_tracks_true") or [0] * len(attrs["nodes_modes"])
    for root in attrs["tree_roots"]:
        i = root
        while True:
            go = _goes_true(attrs["nodes_modes"][i], float(row[attrs["nodes_featureids"][i]]),
                            attrs["nodes_splits"][i], sets.get(i), missing[i])
            side = "true" if go else "false"
            nxt = attrs[f"nodes_{side}nodeids"][i]
            if attrs[f"nodes_{side}leafs"][i]:
                votes[attrs["leaf_targetids"][nxt]].append(attrs["leaf_weights"][nxt])
                break
            i = nxt
    agg = attrs["aggregate_function"]
    n_trees = len(attrs["tree_roots"])
    out = []
    for v in votes:
        if attrs["post_transform"] != POSTS["NONE"]:
            raise NotImplementedError("post transform")
        out.append({0: lambda: sum(v) / n_trees, 1: lambda: sum(v)}[agg]())
    return out


def _member_float():
    """FLOAT [N, 3]: mode id (a category), distance km, weather severity (NaN when missing).
    Two targets, SUM: BRANCH_MEMBER sets (one holding 0), every other mode, a leaf two nodes
    share, and a one-leaf tree. Members are integers, as LightGBM's categories are (onnxruntime
    refuses others and empty sets; the Go tests cover those)."""
    nan = float("nan")
    return {
        "n_targets": 2, "aggregate_function": 1, "post_transform": 0,
        "tree_roots": [0, 4, 8],
        #            0  1  2  3  4  5  6  7  8
        "nodes_modes": [6, 0, 3, 6, 1, 6, 5, 2, 0],
        "nodes_featureids": [0, 1, 2, 0, 1, 0, 0, 2, 0],
        "nodes_splits": [0.0, 1500.0, 0.7, 0.0, 800.0, 0.0, 1.0, 0.25, 0.0],
        "nodes_missing_value_tracks_true": [1, 0, 0, 1, 0, 0, 0, 1, 0],
        "nodes_truenodeids": [1, 0, 2, 3, 5, 4, 7, 7, 8],
        "nodes_trueleafs": [0, 1, 1, 1, 0, 1, 0, 1, 1],
        "nodes_falsenodeids": [2, 1, 3, 1, 6, 5, 6, 9, 8],
        "nodes_falseleafs": [0, 1, 0, 1, 0, 1, 1, 1, 1],
        "membership_values": [0.0, 2.0, nan, 1.0, 3.0, nan, 3.0, 4.0, 1.0, nan],
        "leaf_targetids": [0, 0, 0, 1, 1, 1, 0, 1, 1, 0],
        "leaf_weights": [1.5, 4.0, 9.25, 0.125, 0.75, -0.5, 2.0, 0.3, 0.0625, -1.25],
    }


def _member_double():
    """DOUBLE [N, 2]: a member float32 cannot hold (2^24 + 1), a split it cannot hold (0.1),
    AVERAGE; one target, so no post transform (onnxruntime applies only PROBIT to one)."""
    nan = float("nan")
    return {
        "n_targets": 1, "aggregate_function": 0, "post_transform": 0,
        "tree_roots": [0, 2],
        "nodes_modes": [6, 0, 6],
        "nodes_featureids": [0, 1, 1],
        "nodes_splits": [0.0, 0.1, 0.0],
        "nodes_missing_value_tracks_true": [0, 1, 0],
        "nodes_truenodeids": [0, 1, 3],
        "nodes_trueleafs": [1, 1, 1],
        "nodes_falsenodeids": [1, 2, 4],
        "nodes_falseleafs": [0, 1, 1],
        "membership_values": [16777217.0, -3.0, nan, 7.0, nan],
        "leaf_targetids": [0, 0, 0, 0, 0],
        "leaf_weights": [2.5, -1.0, 0.25, 1.75, -0.5],
    }


def _member_rows(rng, n):
    mode = rng.integers(0, 5, n).astype(np.float64)
    mode[rng.random(n) < 0.15] = np.nan
    mode[rng.random(n) < 0.1] = 5  # a category no set holds
    dist = np.round(rng.uniform(50, 4000, n))
    dist[:3] = [800.0, 1500.0, 799.0]  # on the thresholds
    weather = rng.uniform(0, 1, n)
    weather[rng.random(n) < 0.2] = np.nan
    weather[3:5] = [0.7, 0.25]
    return np.stack([mode, dist, weather], axis=1).astype(np.float32)


def _double_rows(rng, n):
    a = rng.choice([16777217.0, 16777216.0, -3.0, -4.0, 7.0, 0.0, np.nan], n)
    b = rng.choice([0.1, float(np.float32(0.1)), 0.05, 7.0, 7.5, np.nan], n)
    return np.stack([a, b], axis=1)


def _f64(name, values):
    values = np.asarray(values, dtype=np.float64)
    return {"name": name, "datatype": "FP64", "shape": list(values.shape),
            "data": [None if np.isnan(v) else float(v) for v in values.ravel()]}


def _category_mapper():
    cats = ["maersk", "msc", "cma_cgm", "cosco", "hapag_lloyd", "one", "evergreen"]
    ids = [10, 11, 12, 13, 14, 15, 16]
    nodes = [helper.make_node("CategoryMapper", ["carrier"], ["carrier_id"], domain="ai.onnx.ml",
                              name="CarrierToId", cats_strings=cats, cats_int64s=ids,
                              default_int64=-1),
             helper.make_node("CategoryMapper", ["carrier_code"], ["carrier_name"],
                              domain="ai.onnx.ml", name="IdToCarrier", cats_strings=cats,
                              cats_int64s=ids, default_string="unknown_carrier")]
    graph = helper.make_graph(
        nodes, "category_mapper",
        [helper.make_tensor_value_info("carrier", TensorProto.STRING, [None, 2]),
         helper.make_tensor_value_info("carrier_code", TensorProto.INT64, [None])],
        [helper.make_tensor_value_info("carrier_id", TensorProto.INT64, [None, 2]),
         helper.make_tensor_value_info("carrier_name", TensorProto.STRING, [None])])
    model = helper.make_model(graph, producer_name=PRODUCER, ir_version=8,
                              opset_imports=[helper.make_opsetid("", 17),
                                             helper.make_opsetid("ai.onnx.ml", 1)])
    carriers = np.array([["msc", "maersk"], ["zim", ""], ["one", "Maersk"], ["evergreen", "cosco"]])
    codes = np.array([16, 10, 0, -1, 13, 99], dtype=np.int64)
    to_id = dict(zip(cats, ids))
    to_name = dict(zip(ids, cats))
    want_ids = np.array([[to_id.get(c, -1) for c in row] for row in carriers], dtype=np.int64)
    want_names = np.array([to_name.get(int(c), "unknown_carrier") for c in codes])
    return model, [("carrier", carriers), ("carrier_code", codes)], \
        [("carrier_id", want_ids), ("carrier_name", want_names)]


def generate(mf, data, out, manifest):
    """Writes the fixtures; mf is modelfixtures (its tensor, JSON and manifest helpers)."""
    dm, tm = data.train_missing, data.test_missing
    X, Xm = data.train.X, dm.X
    xgb = dict(random_state=mf.SEED, n_jobs=1, tree_method="hist")
    written = []

    def write(name, describe, proto, inputs, outputs, converter):
        blob = proto.SerializeToString()
        mf._write(f"{out}/{name}.onnx", blob)
        mf._write(f"{out}/{name}.json", mf._json({"model": name, "source": describe,
                                                  "inputs": inputs, "outputs": outputs}))
        manifest["fixtures"].append(mf._entry(name, describe, blob, converter, False))
        written.append(name)

    def boundary(Xt, old_proto):
        return np.concatenate([Xt, mf._boundary_rows(Xt, mf._onnx_thresholds(old_proto))])

    te5 = "rewritten into TreeEnsemble (ai.onnx.ml 5) by tree5emit.py"
    def xgb_fixture(name, describe, model, emit, output, answer):
        old = emit(model, Xm.shape[1], name)
        Xt = boundary(tm.X, old)
        write(name, describe,
              tree_ensemble_model(to_tree_ensemble(_tree_node(old), post_transform="NONE"),
                                  Xm.shape[1], name, output, 1),
              [mf._tensor("input", Xt)],
              [mf._tensor(output, answer(Xt).astype(np.float32).reshape(-1, 1))],
              f"onnxmltools {xgbemit.onnxemit.ONNXMLTOOLS_VERSION} (reproduced), {te5}")

    reg = XGBRegressor(n_estimators=60, max_depth=5, **xgb).fit(Xm, dm.delay_hours)
    xgb_fixture("xgb_delay_hours_te5",
                "XGBRegressor, 60 trees of depth ≤ 5, on delay hours with missing readings; "
                "onnxmltools' TreeEnsembleRegressor rewritten into TreeEnsemble (base score as "
                "a one-leaf tree)",
                reg, xgbemit.regressor_model, "variable", reg.predict)
    clf = XGBClassifier(n_estimators=40, max_depth=4, **xgb).fit(Xm, dm.late)
    xgb_fixture("xgb_binary_te5",
                "XGBClassifier, 40 trees of depth ≤ 4, binary:logistic with missing readings; "
                "onnxmltools' TreeEnsembleClassifier rewritten into one TreeEnsemble target, "
                "post transform NONE: the margin (onnxruntime applies only PROBIT to one "
                "target)",
                clf, xgbemit.classifier_model, "margin",
                lambda Xt: clf.predict(Xt, output_margin=True))

    gb = GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=mf.SEED).fit(
        X, data.train.grade)
    old = sklemit.SklConverter(gb, X.shape[1], zipmap=False).convert("skl_gb_grade_te5",
                                                                       mf.OPSET_ORDER)
    Xt = boundary(data.test.X, old)
    write("skl_gb_grade_te5",
          "GradientBoostingClassifier, 15 rounds × 3 grades of depth ≤ 3; skl2onnx's "
          "TreeEnsembleClassifier rewritten into TreeEnsemble of the raw scores (post "
          "transform NONE) and ArgMax, as the specification describes a classifier",
          tree_ensemble_model(to_tree_ensemble(_tree_node(old), post_transform="NONE"),
                              X.shape[1], "skl_gb_grade_te5", "scores", 3, argmax="label"),
          [mf._tensor("input", Xt)],
          [mf._tensor("label", gb.predict(Xt)),
           mf._tensor("scores", gb.decision_function(Xt).astype(np.float32))],
          f"skl2onnx {sklemit.onnxemit.SKL2ONNX_VERSION} (reproduced), {te5}")

    rng = np.random.Generator(np.random.PCG64(mf.SEED + 5))
    attrs = _member_float()
    rows = _member_rows(rng, 40)
    write("te5_member_float",
          "hand-built TreeEnsemble: BRANCH_MEMBER on the mode id (a set holding 0), every "
          "other mode, NaN tracks, a shared leaf, a one-leaf tree; FLOAT, 2 targets, SUM; "
          "answers from a plain walk of the specification",
          tree_ensemble_model(attrs, 3, "te5_member_float", "Y", 2),
          [mf._tensor("input", rows)],
          [mf._tensor("Y", np.array([walk(attrs, r) for r in rows], dtype=np.float32))],
          "hand-built (tree5emit.py)")
    attrs = _member_double()
    rows = _double_rows(rng, 32)
    write("te5_member_double",
          "hand-built TreeEnsemble: BRANCH_MEMBER and a split on DOUBLE values float32 "
          "cannot hold, AVERAGE; answers from a plain walk of the specification",
          tree_ensemble_model(attrs, 2, "te5_member_double", "Y", 1, elem=TensorProto.DOUBLE),
          [_f64("input", rows)],
          [_f64("Y", np.array([walk(attrs, r) for r in rows]))],
          "hand-built (tree5emit.py)")

    model, ins, outs = _category_mapper()
    write("category_mapper",
          "hand-built CategoryMapper pair: carrier names to ids (default -1) and ids to names "
          "(default unknown_carrier); answers from Python dictionaries",
          model, [mf._tensor(n, v) for n, v in ins], [mf._tensor(n, v) for n, v in outs],
          "hand-built (tree5emit.py)")
    return written


NAMES = ["xgb_delay_hours_te5", "xgb_binary_te5", "skl_gb_grade_te5", "te5_member_float",
         "te5_member_double", "category_mapper"]


def _stub_torch():
    """Lets modelfixtures import where python3-torch is not installed: these fixtures need
    only its helpers, never torch itself."""
    import sys
    import types
    torch = types.ModuleType("torch")
    torch.nn = types.ModuleType("torch.nn")
    torch.nn.Module = object
    sys.modules["torch"], sys.modules["torch.nn"] = torch, torch.nn


def main():
    """Writes only these fixtures and their manifest entries (in the place a full generate
    puts them): `modelfixtures.py generate` writes them too, but needs python3-torch."""
    import argparse
    import json
    import os
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        import torch  # noqa: F401
    except ImportError:
        _stub_torch()
    import modelfixtures as mf
    p = argparse.ArgumentParser(description=main.__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.normpath(mf.DEFAULT_OUT))
    out = p.parse_args().out
    path = os.path.join(out, "manifest.json")
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    manifest["fixtures"] = [x for x in manifest["fixtures"] if x["name"] not in NAMES]
    generate(mf, mf.Data(), out, manifest)
    mf._write(path, mf._json(manifest))


if __name__ == "__main__":
    main()
