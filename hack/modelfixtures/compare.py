"""Compares the fixture tool's graphs with the ones the real converters write.

skl2onnx and onnxmltools are not Debian packages; to run this check, put checkouts of them on
PYTHONPATH (skl2onnx 1.21.0 and onnxmltools 1.17.0 are the versions the tool reproduces):

    PYTHONPATH=/path/to/sklearn-onnx:/path/to/onnxmltools \
        /usr/bin/python3 hack/modelfixtures/modelfixtures.py compare

Both converters import onnx.helper.np_dtype_to_tensor_dtype, which onnx 1.12 lacks; it is
defined here from onnx 1.12's own mapping table before they load. Every model the fixture tool
trains is converted both ways and the two ModelProtos must agree field by field, except for
the order of opset_import (skl2onnx fills it from a Python set, so its order varies from run to
run).
"""

import numpy as np
import onnx
import onnx.helper
import onnx.mapping


def _patch_onnx_112():
    if not hasattr(onnx.helper, "np_dtype_to_tensor_dtype"):
        onnx.helper.np_dtype_to_tensor_dtype = (
            lambda dt: onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[np.dtype(dt)])
        onnx.helper.tensor_dtype_to_np_dtype = (
            lambda t: onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[t])


def differences(ours, theirs):
    """Lists how two ModelProtos differ; empty when they agree (opset order aside)."""
    diffs = []
    a, b = onnx.ModelProto(), onnx.ModelProto()
    a.CopyFrom(ours)
    b.CopyFrom(theirs)
    oa = sorted((o.domain, o.version) for o in a.opset_import)
    ob = sorted((o.domain, o.version) for o in b.opset_import)
    if oa != ob:
        diffs.append(f"opset_import: ours {oa}, theirs {ob}")
    del a.opset_import[:]
    del b.opset_import[:]
    for field in ("ir_version", "producer_name", "producer_version", "domain", "model_version",
                  "doc_string"):
        if getattr(a, field) != getattr(b, field):
            diffs.append(f"{field}: ours {getattr(a, field)!r}, theirs {getattr(b, field)!r}")
    ga, gb = a.graph, b.graph
    for field in ("input", "output", "initializer", "value_info"):
        la, lb = list(getattr(ga, field)), list(getattr(gb, field))
        if len(la) != len(lb):
            diffs.append(f"graph.{field}: ours {[x.name for x in la]}, "
                         f"theirs {[x.name for x in lb]}")
            continue
        for x, y in zip(la, lb):
            if x != y:
                diffs.append(f"graph.{field} {x.name!r} differs:\nours   {x}\ntheirs {y}")
    if len(ga.node) != len(gb.node):
        diffs.append("nodes: ours %s, theirs %s" % (
            [(n.op_type, n.name) for n in ga.node], [(n.op_type, n.name) for n in gb.node]))
    else:
        for x, y in zip(ga.node, gb.node):
            # Bytes, not ==: a NaN attribute (Imputer's replaced value) never equals itself.
            if x.SerializeToString() == y.SerializeToString():
                continue
            head = f"node {x.op_type} {x.name!r} / {y.op_type} {y.name!r}"
            if (x.op_type, x.name, x.domain, list(x.input), list(x.output)) != (
                    y.op_type, y.name, y.domain, list(y.input), list(y.output)):
                diffs.append(f"{head}: ours {x.domain} {list(x.input)} -> {list(x.output)}, "
                             f"theirs {y.domain} {list(y.input)} -> {list(y.output)}")
            xa = {t.name: t for t in x.attribute}
            ya = {t.name: t for t in y.attribute}
            if list(xa) != list(ya):
                diffs.append(f"{head}: attributes ours {list(xa)}, theirs {list(ya)}")
            for k in xa:
                if k in ya and xa[k].SerializeToString() != ya[k].SerializeToString():
                    va = onnx.helper.get_attribute_value(xa[k])
                    vb = onnx.helper.get_attribute_value(ya[k])
                    diffs.append(f"{head}: attribute {k} ours {_short(va)} theirs {_short(vb)}")
    return diffs


def _short(v):
    if isinstance(v, (list, tuple)) and len(v) > 8:
        return f"[{len(v)} values: {list(v[:6])}...]"
    return repr(v)


def real_converters():
    """Returns (convert_sklearn, convert_xgboost, register_xgboost) from the real packages."""
    _patch_onnx_112()
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import \
        convert_xgboost as xgb_converter
    from onnxmltools import convert_xgboost
    from skl2onnx import convert_sklearn, update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
    from xgboost import XGBClassifier

    def register_xgboost():
        update_registered_converter(
            XGBClassifier, "XGBoostXGBClassifier", calculate_linear_classifier_output_shapes,
            xgb_converter, options={"nocl": [True, False], "zipmap": [True, False, "columns"]})

    return convert_sklearn, convert_xgboost, register_xgboost
