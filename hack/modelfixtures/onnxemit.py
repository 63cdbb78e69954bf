"""A small graph container that writes ONNX files the way skl2onnx and onnxmltools write them.

The converters are not installed here (Debian packages neither skl2onnx nor onnxmltools), so the
fixture tool builds their graphs itself. What matters for fidelity is reproduced: unique names
(a seed, then seed1, seed2, ...), node names, attribute order (onnx.helper sorts them), the
operator version each node is stamped with, and how opset_import, ir_version, producer and domain
are filled in. compare.py checks the result against the real converters when they can be
imported.
"""

import onnx
from onnx import TensorProto, helper
from onnx.defs import get_schema, onnx_opset_version

# skl2onnx 1.21.0 tests its converters up to opset 25 but never targets more than the installed
# onnx package defines: 17 with Debian's python3-onnx 1.12.
SKL2ONNX_VERSION = "1.21.0"
SKL2ONNX_MAX_OPSET = 25
# onnxmltools 1.17.0 targets opset 15 unless told otherwise.
ONNXMLTOOLS_VERSION = "1.17.0"
ONNXMLTOOLS_DEFAULT_OPSET = 15

# The IR version both converters stamp for a main opset (their own tables agree for these).
_OPSET_TO_IR = {9: 4, 10: 5, 11: 6, 12: 7, 13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9,
                20: 9, 21: 10, 22: 10, 23: 10, 24: 10, 25: 10}


def skl2onnx_target_opset():
    return min(SKL2ONNX_MAX_OPSET, onnx_opset_version())


def onnxmltools_target_opset():
    return min(onnx_opset_version(), ONNXMLTOOLS_DEFAULT_OPSET)


class Graph:
    """Nodes, initializers, inputs and outputs of one converted model."""

    def __init__(self, main_opset):
        self.main_opset = main_opset
        self.nodes = []
        self.initializers = []
        self.inputs = []
        self.outputs = []
        self.variables = set()
        self.operators = set()
        # (domain, version) of every node, in the order added: opset_import is derived from it.
        self.stamps = []

    @staticmethod
    def _unique(seed, taken):
        if seed not in taken:
            taken.add(seed)
            return seed
        i = 1
        while seed + str(i) in taken:
            i += 1
        taken.add(seed + str(i))
        return seed + str(i)

    def var(self, seed):
        """A variable name unique in the graph, derived from seed the way the converters do."""
        return self._unique(seed, self.variables)

    def opname(self, seed):
        return self._unique(seed, self.operators)

    def domain_target(self, domain):
        if domain == "":
            return self.main_opset
        return max(s.since_version for s in onnx.defs.get_all_schemas_with_history()
                   if s.domain == domain)

    def newest_version(self, op_type, domain):
        """The newest version of an operator not above the target opset of its domain."""
        return get_schema(op_type, self.domain_target(domain), domain).since_version

    def node(self, op_type, inputs, outputs, domain="", version=None, name=None, **attrs):
        if version is None:
            version = self.newest_version(op_type, domain)
        if isinstance(inputs, str):
            inputs = [inputs]
        if isinstance(outputs, str):
            outputs = [outputs]
        n = helper.make_node(op_type, inputs, outputs, name=name, **attrs)
        n.domain = domain
        self.nodes.append(n)
        self.stamps.append((domain, version))
        return n

    def initializer(self, name, data_type, dims, values):
        self.initializers.append(helper.make_tensor(name, data_type, dims, values))
        return name

    def input(self, name, elem_type, dims):
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, dims))

    def tensor_output(self, name, elem_type, dims):
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, dims))

    def zipmap_output(self, name, key_type):
        """The sequence of maps from class label to probability that ZipMap produces."""
        t = onnx.TypeProto()
        m = t.sequence_type.elem_type.map_type
        m.key_type = key_type
        m.value_type.tensor_type.elem_type = TensorProto.FLOAT
        vi = onnx.ValueInfoProto()
        vi.name = name
        vi.type.CopyFrom(t)
        self.outputs.append(vi)

    def graph(self, name):
        return helper.make_graph(self.nodes, name, self.inputs, self.outputs, self.initializers)


def _opsets_by_domain(stamps):
    """The newest version per domain, domains in first-seen order."""
    out = {}
    for domain, version in stamps:
        out[domain] = max(out.get(domain, version), version)
    return out


def skl2onnx_model(g, name, opset_order):
    """Wraps a graph as skl2onnx 1.21.0 does.

    skl2onnx fills opset_import from a Python set, so its order changes from run to run; the
    fixture tool writes it in opset_order (a list of domains) to stay reproducible. A model
    without any node of the main domain gets the main opset twice, as skl2onnx writes it.
    """
    used = _opsets_by_domain(g.stamps)
    model = helper.make_model(g.graph(name))
    del model.opset_import[:]
    for domain in opset_order:
        if domain in used:
            model.opset_import.add(domain=domain, version=used[domain])
    if "" not in used:
        model.opset_import.add(domain="", version=g.main_opset)
        model.opset_import.add(domain="", version=g.main_opset)
    model.ir_version = _OPSET_TO_IR[min(g.main_opset, onnx_opset_version())]
    model.producer_name = "skl2onnx"
    model.producer_version = SKL2ONNX_VERSION
    model.domain = "ai.onnx"
    model.model_version = 0
    model.doc_string = ""
    return model


def onnxmltools_model(g, name):
    """Wraps a graph as onnxmltools 1.17.0 does: only the domains its nodes use are imported."""
    used = _opsets_by_domain(g.stamps)
    model = helper.make_model(g.graph(name))
    del model.opset_import[:]
    for domain, version in used.items():
        if domain == "" and version < 8 and g.main_opset >= 8:
            version = 8
        model.opset_import.add(domain=domain, version=version)
    model.ir_version = _OPSET_TO_IR[g.main_opset]
    model.producer_name = "OnnxMLTools"
    model.producer_version = ONNXMLTOOLS_VERSION
    model.domain = "onnxml"
    model.model_version = 0
    return model
