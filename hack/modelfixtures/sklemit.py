"""Builds the ONNX graphs skl2onnx 1.21.0 writes for the scikit-learn models of the fixtures.

Only what the fixtures use is covered: Pipeline, ColumnTransformer over column indices,
SimpleImputer, StandardScaler, OneHotEncoder, LogisticRegression (lbfgs), RandomForest and
GradientBoosting classifiers, RandomForest and DecisionTree regressors, SVC and NuSVC (with
probabilities, or decision_function_shape="ovo"), SVR, NuSVR and OneClassSVM, and an XGBClassifier
registered with onnxmltools' converter the way onnxmltools' documentation shows. Each converter
emits the nodes, names and attributes skl2onnx emits (see compare.py for the check against the
real thing), then the graph is finished as skl2onnx finishes it: nodes sorted by depth, then
operator type and name, and Identity nodes folded away.
"""

import numbers

import numpy as np
from onnx import TensorProto
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (GradientBoostingClassifier, RandomForestClassifier,
                              RandomForestRegressor)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC, SVR, NuSVC, NuSVR, OneClassSVM
from sklearn.tree import DecisionTreeRegressor

import onnxemit
import xgbemit


class _Var:
    def __init__(self, name, width):
        self.name = name
        self.width = width


def _threshold_for_float32(threshold):
    """The float32 threshold w with (float)x <= t exactly when (float)x <= w.

    scikit-learn compares float32 inputs with float64 thresholds; skl2onnx stores thresholds as
    float32 and rounds a threshold that does not fit down, so that no input changes branch.
    """
    t32 = np.float32(threshold)
    if t32 == threshold or t32 < threshold:
        return np.float64(t32)
    eps = max(abs(t32), np.finfo(np.float32).eps) * 10
    return np.float64(np.nextafter([t32], [t32 - eps], dtype=np.float32)[0])


class _TreeAttrs:
    """The node and leaf attributes of TreeEnsembleClassifier/Regressor, filled tree by tree."""

    def __init__(self, classifier):
        self.classifier = classifier
        self.nodes = {k: [] for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids",
                                      "nodes_modes", "nodes_values", "nodes_truenodeids",
                                      "nodes_falsenodeids", "nodes_missing_value_tracks_true",
                                      "nodes_hitrates")}
        prefix = "class" if classifier else "target"
        self.prefix = prefix
        self.leaves = {prefix + k: [] for k in ("_treeids", "_nodeids", "_ids", "_weights")}

    def add_sklearn_tree(self, tree, tree_id, tree_weight, class_offset, counts):
        """Adds a fitted sklearn tree_. counts: leaf values are class counts to normalise."""
        for i in range(tree.node_count):
            branch = tree.children_left[i] > i or tree.children_right[i] > i
            n = self.nodes
            n["nodes_treeids"].append(tree_id)
            n["nodes_nodeids"].append(i)
            n["nodes_featureids"].append(int(tree.feature[i]) if branch else 0)
            n["nodes_modes"].append("BRANCH_LEQ" if branch else "LEAF")
            n["nodes_values"].append(_threshold_for_float32(tree.threshold[i]) if branch else 0.0)
            n["nodes_truenodeids"].append(int(tree.children_left[i]) if branch else 0)
            n["nodes_falsenodeids"].append(int(tree.children_right[i]) if branch else 0)
            n["nodes_missing_value_tracks_true"].append(0)
            n["nodes_hitrates"].append(1.0)
            if branch:
                continue
            weights = tree.value[i].flatten()
            factor = tree_weight
            if counts:
                s = sum(weights)
                factor /= float(s) if s != 0.0 else 1.0
            weights = [w * factor for w in weights]
            if len(weights) == 2 and self.classifier:
                # A binary classifier keeps the positive class only.
                weights = [weights[1]]
            for k, w in enumerate(weights):
                self.leaves[self.prefix + "_treeids"].append(tree_id)
                self.leaves[self.prefix + "_nodeids"].append(i)
                self.leaves[self.prefix + "_ids"].append(k + class_offset)
                self.leaves[self.prefix + "_weights"].append(w)

    def attrs(self):
        out = dict(self.nodes)
        out.update(self.leaves)
        for k in ("nodes_values", "nodes_hitrates", self.prefix + "_weights"):
            out[k] = np.array(out[k], dtype=np.float32).ravel()
        return out


def _class_label_attrs(classes, ints_name):
    if all(isinstance(c, (numbers.Real, bool, np.bool_)) for c in classes):
        return {ints_name: [int(c) for c in classes]}
    return {"classlabels_strings": [str(c) for c in classes]}


class SklConverter:
    """Converts one fitted scikit-learn model with a single FLOAT input [None, width]."""

    def __init__(self, model, width, zipmap=True):
        self.model = model
        self.zipmap = zipmap
        self.g = onnxemit.Graph(onnxemit.skl2onnx_target_opset())
        self.g.input(self.g.var("input"), TensorProto.FLOAT, [None, width])
        self.inp = _Var("input", width)
        # The parse phase declares every operator's outputs before any converter runs, so the
        # names converters pick later come after these; the work list keeps that order.
        self.work = []

    # --- parse phase: declare outputs, queue converters ---

    def _parse(self, model, inp):
        if isinstance(model, Pipeline):
            for _, step in model.steps:
                inp = self._parse(step, inp)
            return inp
        if isinstance(model, ColumnTransformer):
            return self._parse_column_transformer(model, inp)
        if isinstance(model, SimpleImputer):
            out = _Var(self.g.var("variable"), inp.width)
            self.work.append(lambda: self._imputer(model, inp, out))
            return out
        if isinstance(model, StandardScaler):
            out = _Var(self.g.var("variable"), inp.width)
            self.work.append(lambda: self._scaler(model, inp, out))
            return out
        if isinstance(model, OneHotEncoder):
            width = sum(len(c) for c in model.categories_)
            out = _Var(self.g.var("variable"), width)
            self.work.append(lambda: self._one_hot(model, inp, out))
            return out
        if isinstance(model, (RandomForestRegressor, DecisionTreeRegressor)):
            out = _Var(self.g.var("variable"), 1)
            self.work.append(lambda: self._forest_regressor(model, inp, out))
            self.outputs = [(out.name, TensorProto.FLOAT, [None, 1])]
            return out
        if isinstance(model, OneClassSVM):
            label, scores = self.g.var("label"), self.g.var("scores")
            self.work.append(lambda: self._one_class_svm(model, inp, label, scores))
            self.outputs = [(label, TensorProto.INT64, [None, 1]),
                            (scores, TensorProto.FLOAT, [None, 1])]
            return None
        if isinstance(model, (SVR, NuSVR)):
            out = _Var(self.g.var("variable"), 1)
            self.work.append(lambda: self._svm_regressor(model, inp, out))
            self.outputs = [(out.name, TensorProto.FLOAT, [None, 1])]
            return out
        return self._parse_classifier(model, inp)

    def _parse_column_transformer(self, model, inp):
        results = []
        for _, est, columns in model.transformers_:
            if est == "drop":
                continue
            cols = [columns] if isinstance(columns, int) else list(columns)
            if len(cols) == inp.width:
                sliced = inp
            else:
                sliced = _Var(self.g.var("extracted_feature_columns"), len(cols))
                self.work.append(lambda s=sliced, c=cols: self._array_feature_extractor(inp, c, s))
            results.append(sliced if est == "passthrough" else self._parse(est, sliced))
        if len(results) == 1:
            return results[0]
        out = _Var(self.g.var("transformed_column"), sum(r.width for r in results))
        self.work.append(lambda: self.g.node("Concat", [r.name for r in results], out.name,
                                             version=11, name=self.g.opname("Concat"), axis=1))
        return out

    def _parse_classifier(self, model, inp):
        label = self.g.var("label")
        proba = self.g.var("probabilities")
        classes = model.classes_
        self.work.append(lambda: self._classifier(model, inp, label, proba))
        strings = not all(isinstance(c, (numbers.Real, bool, np.bool_)) for c in classes)
        key_type = TensorProto.STRING if strings else TensorProto.INT64
        if not self.zipmap:
            self.outputs = [(label, key_type, [None]),
                            (proba, TensorProto.FLOAT, [None, len(classes)])]
            return None
        out_label = self.g.var("output_label")
        out_proba = self.g.var("output_probability")
        self.work.append(lambda: self._zipmap(classes, label, proba, out_label, out_proba,
                                              strings))
        self.outputs = [(out_label, key_type, [None]), ("zipmap", out_proba, key_type)]
        return None

    # --- converters ---

    def _array_feature_extractor(self, inp, columns, out):
        idx = self.g.var("column_indices")
        self.g.initializer(idx, TensorProto.INT64, [len(columns)], columns)
        self.g.node("ArrayFeatureExtractor", [inp.name, idx], out.name, domain="ai.onnx.ml",
                    name=self.g.opname("ArrayFeatureExtractor"))

    def _imputer(self, model, inp, out):
        name = self.g.opname("Imputer")
        self.g.node("Imputer", inp.name, out.name, domain="ai.onnx.ml", name=name,
                    imputed_value_floats=model.statistics_.astype(np.float32),
                    replaced_value_float=float(model.missing_values))

    def _scaler(self, model, inp, out):
        name = self.g.opname("Scaler")
        self.g.node("Scaler", inp.name, out.name, domain="ai.onnx.ml", name=name,
                    offset=model.mean_.astype(np.float32),
                    scale=(1.0 / model.scale_).astype(np.float32))

    def _one_hot(self, model, inp, out):
        if len(model.categories_) != 1:
            raise NotImplementedError("the fixtures one-hot encode a single column")
        cats = model.categories_[0]
        if any(int(c) != c for c in cats):
            raise NotImplementedError("float categories must be integers")
        # skl2onnx gathers the column even when the input has only that one.
        index = self.g.var(inp.name + "0")
        self.g.initializer(index, TensorProto.INT64, [1], [0])
        name = self.g.var(inp.name + "0")
        self.g.node("Gather", [inp.name, index], name, axis=1, name=self.g.opname("Gather"))
        op_name = self.g.opname("OneHotEncoder")
        encoded = self.g.var(name + "out")
        cast = self.g.var(name + "cast")
        self.g.node("Cast", name, cast, version=9, name=self.g.opname("Cast"), to=TensorProto.INT64)
        self.g.node("OneHotEncoder", cast, encoded, domain="ai.onnx.ml", name=op_name,
                    cats_int64s=cats.astype(np.int64),
                    zeros=1 if model.handle_unknown == "ignore" else 0)
        shape = self.g.var("shape_tensor")
        self.g.initializer(shape, TensorProto.INT64, [2], [-1, len(cats)])
        self.g.node("Reshape", [encoded, shape], out.name, version=5, name=self.g.opname("Reshape"))

    def _classifier(self, model, inp, label, proba):
        if isinstance(model, LogisticRegression):
            self._logistic(model, inp, label, proba)
        elif isinstance(model, RandomForestClassifier):
            self._forest_classifier(model, inp, label, proba)
        elif isinstance(model, GradientBoostingClassifier):
            self._boosting_classifier(model, inp, label, proba)
        elif isinstance(model, (SVC, NuSVC)):
            self._svm_classifier(model, inp, label, proba)
        elif type(model).__name__ == "XGBClassifier":
            xgbemit.add_classifier(self.g, model, inp.name, label, proba)
        else:
            raise NotImplementedError(type(model).__name__)

    def _logistic(self, model, inp, label, proba):
        classes = model.classes_
        coef = model.coef_.flatten().astype(float).tolist()
        intercepts = model.intercept_.astype(float).tolist()
        binary = len(classes) == 2
        if binary:
            coef = [-c for c in coef] + coef
            intercepts = [-b for b in intercepts] + intercepts
        if model.multi_class not in ("auto", "deprecated") or model.solver != "lbfgs":
            raise NotImplementedError("the fixtures use lbfgs with multi_class='auto'")
        # lbfgs with 'auto' is multinomial for more than two classes.
        attrs = {"name": self.g.opname("LinearClassifier"), "coefficients": coef,
                 "intercepts": intercepts, "multi_class": 0 if binary else 1,
                 "post_transform": "LOGISTIC" if binary else "SOFTMAX"}
        attrs.update(_class_label_attrs(classes, "classlabels_ints"))
        if binary:
            self.g.node("LinearClassifier", inp.name, [label, proba], domain="ai.onnx.ml",
                        **attrs)
            return
        # skl2onnx normalises the softmax so that the probabilities sum to one in float32.
        tensor = self.g.var("probability_tensor")
        self.g.node("LinearClassifier", inp.name, [label, tensor], domain="ai.onnx.ml", **attrs)
        self.g.node("Normalizer", tensor, proba, domain="ai.onnx.ml", norm="L1",
                    name=self.g.opname("Normalizer"))

    def _forest_classifier(self, model, inp, label, proba):
        attrs = {"post_transform": "NONE"}
        t = _TreeAttrs(True)
        attrs["name"] = self.g.opname("TreeEnsembleClassifier")
        attrs.update(_class_label_attrs(model.classes_, "classlabels_int64s"))
        weight = 1.0 / len(model.estimators_)
        for i, est in enumerate(model.estimators_):
            t.add_sklearn_tree(est.tree_, i, weight, 0, counts=True)
        attrs.update(t.attrs())
        self.g.node("TreeEnsembleClassifier", inp.name, [label, proba], domain="ai.onnx.ml",
                    version=1, **attrs)

    def _boosting_classifier(self, model, inp, label, proba):
        attrs = {"post_transform": "NONE"}
        t = _TreeAttrs(True)
        attrs["name"] = self.g.opname("TreeEnsembleClassifier")
        if model.init is not None:
            raise NotImplementedError("the fixtures boost from the default prior")
        x0 = np.zeros((1, model.estimators_[0, 0].n_features_in_))
        attrs["base_values"] = [float(v) for v in model._raw_predict_init(x0).ravel()]
        attrs["post_transform"] = "LOGISTIC" if model.n_classes_ == 2 else "SOFTMAX"
        attrs.update(_class_label_attrs(model.classes_, "classlabels_int64s"))
        if model.n_classes_ == 2:
            for i in range(model.n_estimators_):
                t.add_sklearn_tree(model.estimators_[i][0].tree_, i, model.learning_rate, 0,
                                   counts=False)
        else:
            for i in range(model.n_estimators_):
                for c in range(model.n_classes_):
                    t.add_sklearn_tree(model.estimators_[i][c].tree_, i * model.n_classes_ + c,
                                       model.learning_rate, c, counts=False)
        attrs.update(t.attrs())
        attrs["base_values"] = np.array(attrs["base_values"], dtype=np.float32)
        raw = self.g.var("proba_output")
        self.g.node("TreeEnsembleClassifier", inp.name, [label, raw], domain="ai.onnx.ml",
                    version=1, **attrs)
        # An unnamed node: skl2onnx names it after its position.
        self.g.node("Identity", raw, proba, name=f"N{len(self.g.nodes)}")

    def _forest_regressor(self, model, inp, out):
        t = _TreeAttrs(False)
        attrs = {"post_transform": "NONE", "n_targets": int(model.n_outputs_)}
        attrs["name"] = self.g.opname("TreeEnsembleRegressor")
        if isinstance(model, DecisionTreeRegressor):
            t.add_sklearn_tree(model.tree_, 0, 1.0, 0, counts=False)
        else:
            weight = 1.0 / len(model.estimators_)
            for i, est in enumerate(model.estimators_):
                t.add_sklearn_tree(est.tree_, i, weight, 0, counts=False)
        attrs.update(t.attrs())
        self.g.node("TreeEnsembleRegressor", inp.name, out.name, domain="ai.onnx.ml", version=1,
                    **attrs)

    def _svm_classifier(self, model, inp, label, proba):
        classes = model.classes_
        # Without probabilities, scikit-learn's default 'ovr' shape turns the pairs' decision
        # values into per-class scores; skl2onnx adds that computation after the SVM.
        ovr = model.probA_.size == 0 and len(classes) > 2 and model.decision_function_shape == "ovr"
        attrs = {"name": self.g.opname("SVMc"), "kernel_type": model.kernel.upper(),
                 "kernel_params": [float(v) for v in (model._gamma, model.coef0, model.degree)],
                 "support_vectors": model.support_vectors_.ravel().astype(np.float32)}
        coef, rho = model.dual_coef_.ravel(), model.intercept_
        if len(classes) == 2:
            # scikit-learn flips libsvm's signs for two classes; the converter flips them back.
            coef, rho = -coef, -rho
        attrs["coefficients"] = coef.astype(np.float32)
        attrs["rho"] = rho.astype(np.float32)
        if model.probA_.size > 0:
            attrs["prob_a"] = model.probA_.astype(np.float32)
        if model.probB_.size > 0:
            attrs["prob_b"] = model.probB_.astype(np.float32)
        out = self.g.var("before_ovr") if ovr else proba
        attrs["post_transform"] = "NONE"
        attrs["vectors_per_class"] = model.n_support_.tolist()
        attrs.update(_class_label_attrs(classes, "classlabels_ints"))
        scores = self.g.var("SVM02")
        self.g.node("SVMClassifier", inp.name, [label, scores], domain="ai.onnx.ml", version=1,
                    **attrs)
        self.g.node("Cast", scores, out, version=9, name=self.g.opname("Cast"),
                    to=TensorProto.FLOAT)
        if ovr:
            self._ovr_decision(len(classes), out, proba)

    def _unnamed(self):
        """The name skl2onnx gives a node added without one: its position."""
        return f"N{len(self.g.nodes)}"

    def _pair_column(self, src, ind, ext_seed, neg_seed):
        """Column ind of src, and its negation."""
        ext, neg = self.g.var(ext_seed), self.g.var(neg_seed)
        self.g.node("ArrayFeatureExtractor", [src, ind], ext, domain="ai.onnx.ml",
                    name=self._unnamed())
        self.g.node("Neg", ext, neg, version=6, name=self._unnamed())
        return ext, neg

    def _ovr_decision(self, n, pairs, proba):
        """scikit-learn's _ovr_decision_function over the pairs' decision values: votes plus
        the summed confidences squashed into (-1/3, 1/3), per class."""
        g = self.g
        cst0 = g.initializer(g.var("cst0"), TensorProto.FLOAT, [], [0])
        negative = g.var("negative")
        g.node("Less", [pairs, cst0], negative, version=9, name=g.opname("Less"))
        inegative = g.var("inegative")
        g.node("Cast", negative, inegative, version=9, name=g.opname("Cast"), to=TensorProto.FLOAT)
        neg = g.var("neg")
        g.node("Neg", pairs, neg, name=self._unnamed())
        sign, score = g.var("prob_sign"), g.var("prob_sign")
        g.node("Identity", inegative, sign, name=self._unnamed())
        g.node("Identity", neg, score, name=self._unnamed())
        ovr = g.var("ovr_output")
        g.node("Identity", ovr, proba, name=self._unnamed())
        # The SklearnOVRDecisionFunction operator, converted after the SVM's.
        cst3 = g.initializer(g.var("cst3"), TensorProto.FLOAT, [], [3])
        cst1 = g.initializer(g.var("cst1"), TensorProto.FLOAT, [], [1])
        sumc = [g.var("svcsumc_%d" % i) for i in range(n)]
        vote = [g.var("svcvote_%d" % i) for i in range(n)]
        sumc_add = {x: [] for x in sumc}
        vote_add = {x: [] for x in vote}
        k = 0
        for i in range(n):
            for j in range(i + 1, n):
                ind = g.initializer(g.var("Cind_%d" % k), TensorProto.INT64, [], [k])
                ext, cneg = self._pair_column(score, ind, "Csvc_%d" % k, "Cneg_%d" % k)
                sumc_add[sumc[j]].append(ext)
                sumc_add[sumc[i]].append(cneg)
                ext, vneg = self._pair_column(sign, ind, "Vsvcv_%d" % k, "Vnegv_%d" % k)
                vote_add[vote[j]].append(ext)
                vneg1 = g.var("Vnegv1_%d" % k)
                g.node("Add", [vneg, cst1], vneg1, version=7, name="AddCl_%d_%d" % (i, j))
                vote_add[vote[i]].append(vneg1)
                k += 1
        for add in (sumc_add, vote_add):
            for total, terms in add.items():
                g.node("Sum", terms, total, version=8, name=g.opname("Sum"))
        conc = g.var("Csvcconc")
        g.node("Concat", sumc, conc, version=11, name=g.opname("Concat"), axis=1)
        conc_vote = g.var("Vsvcconcv")
        g.node("Concat", vote, conc_vote, version=11, name=g.opname("Concat"), axis=1)
        conc_abs = g.var("Cabs")
        g.node("Abs", conc, conc_abs, version=6, name=g.opname("Abs"))
        abs1 = g.var("Cconc_abs1")
        g.node("Add", [conc_abs, cst1], abs1, version=7, name="AddF0")
        abs3 = g.var("Cconc_abs3")
        g.node("Mul", [abs1, cst3], abs3, version=7, name=g.opname("Mul"))
        final = g.var("Csvcfinal")
        g.node("Div", [conc, abs3], final, version=7, name=g.opname("Div"))
        g.node("Add", [conc_vote, final], ovr, version=7, name="AddF1")

    def _svm_regressor(self, model, inp, out, raw_seed="SVM03"):
        attrs = {"name": self.g.opname("SVM"), "kernel_type": model.kernel.upper(),
                 "kernel_params": [np.float32(v) for v in (model._gamma, model.coef0,
                                                           model.degree)],
                 "support_vectors": model.support_vectors_.ravel().astype(np.float32),
                 "coefficients": model.dual_coef_.ravel().astype(np.float32),
                 "rho": model.intercept_.astype(np.float32), "post_transform": "NONE",
                 "n_supports": len(model.support_)}
        raw = self.g.var(raw_seed)
        self.g.node("SVMRegressor", inp.name, raw, domain="ai.onnx.ml", version=1, **attrs)
        self.g.node("Cast", raw, out.name, version=9, name=self.g.opname("Cast"),
                    to=TensorProto.FLOAT)

    def _one_class_svm(self, model, inp, label, scores):
        """The regressor's score (decision_function), and its sign as the label."""
        self._svm_regressor(model, inp, _Var(scores, 1), raw_seed="SVMO1")
        pred = self.g.var("float_prediction")
        # An unnamed node: skl2onnx names it after its position.
        self.g.node("Sign", scores, pred, version=9, name=f"N{len(self.g.nodes)}")
        self.g.node("Cast", pred, label, version=9, name=self.g.opname("Cast"),
                    to=TensorProto.INT64)

    def _zipmap(self, classes, label, proba, out_label, out_proba, strings):
        attrs = {"name": self.g.opname("ZipMap")}
        if strings:
            attrs["classlabels_strings"] = [str(c) for c in classes]
            self.g.node("Identity", label, out_label, name=self.g.opname("Identity"))
        else:
            attrs["classlabels_int64s"] = [int(c) for c in classes]
            self.g.node("Cast", label, out_label, version=9, name=self.g.opname("Cast"),
                        to=TensorProto.INT64)
        self.g.node("ZipMap", proba, out_proba, domain="ai.onnx.ml", **attrs)

    # --- finishing ---

    def convert(self, name, opset_order):
        self._parse(self.model, self.inp)
        for step in self.work:
            step()
        for out in self.outputs:
            if out[0] == "zipmap":
                self.g.zipmap_output(out[1], out[2])
            else:
                self.g.tensor_output(*out)
        _sort_by_depth(self.g)
        _fold_identities(self.g)
        return onnxemit.skl2onnx_model(self.g, name, opset_order)


def _sort_by_depth(g):
    """Orders nodes by depth from the inputs, then by operator type and name, as skl2onnx does."""
    depth = {i.name: 0 for i in g.inputs}
    depth.update({t.name: 0 for t in g.initializers})
    node_depth = {}
    changed = True
    while changed:
        changed = False
        for k, n in enumerate(g.nodes):
            if k in node_depth or any(i not in depth for i in n.input):
                continue
            d = max([depth[i] for i in n.input], default=0) + 1
            node_depth[k] = d
            for o in n.output:
                depth[o] = d + 1
            changed = True
    order = sorted(range(len(g.nodes)),
                   key=lambda k: (node_depth[k], g.nodes[k].op_type, g.nodes[k].name))
    g.nodes = [g.nodes[k] for k in order]
    g.stamps = [g.stamps[k] for k in order]


def _fold_identities(g):
    """Removes Identity nodes whose output is not a graph output, their consumers reading the
    Identity's input instead; an Identity that writes a graph output stays."""
    outputs = {o.name for o in g.outputs}
    keep = []
    for k, n in enumerate(g.nodes):
        if n.op_type != "Identity" or n.output[0] in outputs:
            keep.append(k)
            continue
        src, dst = n.input[0], n.output[0]
        for m in g.nodes:
            for j, name in enumerate(m.input):
                if name == dst:
                    m.input[j] = src
    g.nodes = [g.nodes[k] for k in keep]
    # The opset stamp of a removed node stays: skl2onnx computes opset_import before folding.
