"""Builds the TreeEnsemble graphs onnxmltools 1.17.0 writes for XGBoost models.

The trees come from the booster's JSON dump, as onnxmltools reads them: node ids renumbered in
depth-first order, BRANCH_LT splits (XGBoost sends x < split to 'yes'), the missing-value
direction as nodes_missing_value_tracks_true, no hit rates, leaf values as class or target
weights. A binary classifier keeps one weight column (class id 0) under LOGISTIC; a multiclass
one spreads trees over classes round-robin under SOFTMAX.
"""

import json

import numpy as np
from onnx import TensorProto

import onnxemit


def _model_params(model):
    config = json.loads(model.get_booster().save_config())
    param = config["learner"]["learner_model_param"]
    return {
        "objective": config["learner"]["objective"]["name"],
        "base_score": [float(param["base_score"])],
        "num_class": int(param["num_class"]),
        "n_targets": int(param.get("num_target", "1")),
    }


def _feature_index(split):
    if isinstance(split, str) and split.startswith("f"):
        return int(split[1:])
    return int(float(split))


def _tree_attrs(model, classifier):
    trees = [json.loads(s) for s in model.get_booster().get_dump(with_stats=True,
                                                               dump_format="json")]
    prefix = "class" if classifier else "target"
    attrs = {k: [] for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids",
                             "nodes_modes", "nodes_values", "nodes_truenodeids",
                             "nodes_falsenodeids", "nodes_missing_value_tracks_true",
                             prefix + "_treeids", prefix + "_nodeids", prefix + "_ids",
                             prefix + "_weights")}
    for tree_id, root in enumerate(trees):
        remap = {}

        def number(node):
            remap.setdefault(node["nodeid"], len(remap))
            for child in node.get("children", []):
                number(child)

        number(root)

        def emit(node):
            node_id = remap[node["nodeid"]]
            attrs["nodes_treeids"].append(tree_id)
            attrs["nodes_nodeids"].append(node_id)
            if "children" in node:
                attrs["nodes_featureids"].append(_feature_index(node["split"]))
                attrs["nodes_modes"].append("BRANCH_LT")
                attrs["nodes_values"].append(float(node["split_condition"]))
                attrs["nodes_truenodeids"].append(remap[node["yes"]])
                attrs["nodes_falsenodeids"].append(remap[node["no"]])
                attrs["nodes_missing_value_tracks_true"].append(
                    int(node.get("missing", -1) == node["yes"]))
                for child in node["children"]:
                    emit(child)
                return
            attrs["nodes_featureids"].append(0)
            attrs["nodes_modes"].append("LEAF")
            attrs["nodes_values"].append(0.0)
            attrs["nodes_truenodeids"].append(0)
            attrs["nodes_falsenodeids"].append(0)
            attrs["nodes_missing_value_tracks_true"].append(0)
            attrs[prefix + "_treeids"].append(tree_id)
            attrs[prefix + "_nodeids"].append(node_id)
            attrs[prefix + "_ids"].append(0)
            attrs[prefix + "_weights"].append(float(node["leaf"]))

        emit(root)
    return attrs, trees


def _classifier_attrs(model):
    params = _model_params(model)
    attrs, trees = _tree_attrs(model, True)
    num_class = params["num_class"]
    base_score = params["base_score"]
    if num_class <= 1:
        if params["objective"] != "binary:logistic":
            raise NotImplementedError(params["objective"])
        attrs["post_transform"] = "LOGISTIC"
        attrs["class_ids"] = [0 for _ in attrs["class_treeids"]]
        if trees[0].get("leaf") == 0:
            attrs["base_values"] = base_score
        elif base_score[0] != 0.5:
            attrs["base_values"] = [-np.log(1 / np.float32(base_score[0]) - 1.0)]
    else:
        if params["objective"] != "multi:softprob":
            raise NotImplementedError(params["objective"])
        attrs["post_transform"] = "SOFTMAX"
        attrs["base_values"] = base_score * num_class
        attrs["class_ids"] = [t % num_class for t in attrs["class_treeids"]]
    attrs["classlabels_int64s"] = model.classes_.astype("int")
    return attrs


def add_classifier(g, model, input_name, label, proba):
    """Adds the TreeEnsembleClassifier of an XGBClassifier to a graph (as inside skl2onnx)."""
    attrs = _classifier_attrs(model)
    g.node("TreeEnsembleClassifier", input_name, [label, proba], domain="ai.onnx.ml",
           name=g.opname("TreeEnsembleClassifier"), **attrs)


def classifier_model(model, width, name):
    """onnxmltools.convert_xgboost(model, initial_types=[("input", [None, width])])."""
    g = onnxemit.Graph(onnxemit.onnxmltools_target_opset())
    g.input(g.var("input"), TensorProto.FLOAT, [None, width])
    label, proba = g.var("label"), g.var("probabilities")
    g.node("TreeEnsembleClassifier", "input", [label, proba], domain="ai.onnx.ml", version=1,
           name=g.opname("TreeEnsembleClassifier"), **_classifier_attrs(model))
    g.tensor_output(label, TensorProto.INT64, [None])
    g.tensor_output(proba, TensorProto.FLOAT, [None, len(model.classes_)])
    return onnxemit.onnxmltools_model(g, name)


def regressor_model(model, width, name):
    """onnxmltools.convert_xgboost for an XGBRegressor with squared error."""
    params = _model_params(model)
    if not params["objective"].startswith("reg:squared"):
        raise NotImplementedError(params["objective"])
    attrs, _ = _tree_attrs(model, False)
    attrs["post_transform"] = "NONE"
    attrs["n_targets"] = params["n_targets"]
    attrs["base_values"] = params["base_score"]
    g = onnxemit.Graph(onnxemit.onnxmltools_target_opset())
    g.input(g.var("input"), TensorProto.FLOAT, [None, width])
    out = g.var("variable")
    g.node("TreeEnsembleRegressor", "input", out, domain="ai.onnx.ml", version=1,
           name=g.opname("TreeEnsembleRegressor"), **attrs)
    g.tensor_output(out, TensorProto.FLOAT, [None, 1])
    return onnxemit.onnxmltools_model(g, name)
