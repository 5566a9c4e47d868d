"""Text in, label out, in one ONNX file: the tokenizer op, the student and the task's head.

    text: string [N]  (or [N, 2] for a sentence-pair model)
      └─ Loop over the N rows: BertTokenizer → [1, L] ids → the model → Softmax (or Sigmoid)
    classes:     probabilities: float [N, C], label: string [N]
    multi-label: probabilities: float [N, C] (sigmoid), selected: bool [N, C] (each ≥ its threshold)
    embedding:   sentence_embedding: float [N, D] (the model's pooling and normalisation inside)

Each row runs at its own length (no padding, so int8's per-batch activation scales are the
ones the Python predictor uses at batch 1). The model's weights live in the loop body: as
outer-scope values onnxruntime did not pre-pack them and a row took 6.7 ms instead of 1.7. Label names are in the metadata and in the graph itself.
Any ONNX Runtime binding runs it after registering the onnxruntime-extensions library.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import KdeployError
from .tokenizer_graph import DOMAIN, tokenizer_nodes

INPUT, PROBABILITIES, LABEL, SELECTED = "text", "probabilities", "label", "selected"
HEADS = {"softmax": "Softmax", "sigmoid": "Sigmoid", "identity": "Identity"}  # activation -> the last operator
E2E_MODEL = "model.e2e.onnx"
E2E_METADATA_KEY = "kdeploy.e2e"


def build_e2e(model_path: Path, attributes: dict, table: tuple[str, str, str], label_names: list[str],
              pairs: bool = False, pair_truncation: str = "longest_first", truncation: str = "head",
              activation: str = "softmax", thresholds: list[float] | None = None, output: str = PROBABILITIES):
    """The end-to-end ModelProto around the ONNX model at `model_path`: `activation` is the task
    kind's (softmax: a label per row; sigmoid: the labels at or above `thresholds`; identity: the
    model's output as it is, named `output`, e.g. an embedder's vector)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(model_path))
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        raise KdeployError(f"{model_path.name}: opset {opset}; the e2e model needs opset 13 or later (re-export)")
    initializers = {i.name for i in graph.initializer}
    feeds = [i.name for i in graph.input if i.name not in initializers]
    known = {"input_ids", "attention_mask", "token_type_ids"}
    if "input_ids" not in feeds or set(feeds) - known:
        raise KdeployError(f"{model_path.name}: inputs {feeds}; the e2e model feeds input_ids, attention_mask and "
                           "token_type_ids only")
    logits = graph.output[0].name
    taken = {v for node in graph.node for v in (*node.input, *node.output)} | initializers | set(feeds)
    p = _fresh_prefix(taken)

    # The loop body: row i -> tokens -> [1, L] inputs -> model -> probabilities [1, C].
    nodes = [helper.make_node("Constant", [], [p + "axis0"], value=helper.make_tensor(p + "a0", TensorProto.INT64,
                                                                                      [1], [0]))]
    nodes += _row_nodes(p, pairs)
    tokens = (p + "ids", p + "types", p + "mask")
    nodes.extend(tokenizer_nodes(attributes, table, p + "row", tokens, pairs, prefix=p + "tok_",
                                 pair_truncation=pair_truncation, truncation=truncation))
    for name, value in zip(("input_ids", "token_type_ids", "attention_mask"), tokens):
        if name in feeds:
            nodes.append(helper.make_node("Unsqueeze", [value, p + "axis0"], [name]))
    nodes.extend(graph.node)
    nodes.append(helper.make_node("Cast", [logits], [p + "logits32"], to=TensorProto.FLOAT))
    if activation not in HEADS:
        raise KdeployError(f"--format onnx-e2e: a model read through {activation!r} has no e2e head here")
    head = {"axis": -1} if activation == "softmax" else {}
    nodes.append(helper.make_node(HEADS[activation], [p + "logits32"], [p + "row_probabilities"], **head))
    width = len(label_names) if activation != "identity" else _width(graph)
    nodes.append(helper.make_node("Identity", [p + "cond_in"], [p + "cond_out"]))
    body = helper.make_graph(
        nodes, "kdeploy_row",
        [helper.make_tensor_value_info(p + "i", TensorProto.INT64, []),
         helper.make_tensor_value_info(p + "cond_in", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info(p + "cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info(p + "row_probabilities", TensorProto.FLOAT, [1, width])],
        initializer=list(graph.initializer))  # inside the body, so onnxruntime pre-packs them (4x faster)

    shape = [None, 2] if pairs else [None]
    outer, outputs = _answers(p, body, label_names, pairs, activation, thresholds, output, width)
    e2e = helper.make_graph(outer, "kdeploy_e2e", [helper.make_tensor_value_info(INPUT, TensorProto.STRING, shape)],
                            outputs)
    return _as_model(e2e, model, pairs, attributes["max_length"], truncation, [o.name for o in outputs])


def _answers(p: str, body, label_names: list[str], pairs: bool, activation: str, thresholds, output: str,
             width: int | None) -> tuple[list, list]:
    """(the outer graph's nodes, its outputs): the rows' vectors as they are (identity), or the
    probabilities and the label (softmax) or the labels at their thresholds (sigmoid)."""
    from onnx import TensorProto, helper

    n = len(label_names)
    if activation == "identity":  # the vector itself: no label to pick
        return _loop_nodes(p, body, pairs, output), [helper.make_tensor_value_info(output, TensorProto.FLOAT,
                                                                                  [None, width])]
    outer = _outer_nodes(p, body, label_names, pairs, thresholds if activation == "sigmoid" else None)
    answer = (helper.make_tensor_value_info(SELECTED, TensorProto.BOOL, [None, n]) if activation == "sigmoid"
              else helper.make_tensor_value_info(LABEL, TensorProto.STRING, [None]))
    return outer, [helper.make_tensor_value_info(PROBABILITIES, TensorProto.FLOAT, [None, n]), answer]


def _width(graph) -> int | None:
    """The model output's last dimension (an embedder's width), when the graph says it."""
    dims = graph.output[0].type.tensor_type.shape.dim
    return dims[-1].dim_value or None if dims else None


def _row_nodes(p: str, pairs: bool) -> list:
    """Row i of the input as `p + "row"`: a string [1], or a pair [2]."""
    from onnx import TensorProto, helper

    nodes = []
    if pairs:  # row i of [N, 2], read from the flattened input: onnxruntime's Gather on a 2-D string
        # tensor returned ["plot", ""] for the row ["plot", "story"] (1.32), so each text is gathered 1-D
        nodes += [helper.make_node("Constant", [], [p + "two"], value=helper.make_tensor(p + "2", TensorProto.INT64,
                                                                                         [], [2])),
                  helper.make_node("Mul", [p + "i", p + "two"], [p + "at0"]),
                  helper.make_node("Unsqueeze", [p + "at0", p + "axis0"], [p + "at0_1"]),
                  helper.make_node("Constant", [], [p + "one1"], value=helper.make_tensor(p + "1", TensorProto.INT64,
                                                                                          [1], [1])),
                  helper.make_node("Add", [p + "at0_1", p + "one1"], [p + "at1_1"]),
                  helper.make_node("Concat", [p + "at0_1", p + "at1_1"], [p + "at"], axis=0),
                  helper.make_node("Gather", [p + "flat_text", p + "at"], [p + "row"], axis=0)]
    else:
        nodes.append(helper.make_node("Unsqueeze", [p + "i", p + "axis0"], [p + "index"]))
        nodes.append(helper.make_node("Gather", [INPUT, p + "index"], [p + "row"], axis=0))
    return nodes


def _loop_nodes(p: str, body, pairs: bool, output: str = PROBABILITIES) -> list:
    """The loop over rows (each at its own length), its rows stacked as `output`."""
    from onnx import TensorProto, helper

    flatten = [helper.make_node("Constant", [], [p + "minus1"], value=helper.make_tensor(p + "m1", TensorProto.INT64,
                                                                                         [1], [-1])),
               helper.make_node("Reshape", [INPUT, p + "minus1"], [p + "flat_text"])] if pairs else []
    outer = [*flatten,
        helper.make_node("Shape", [INPUT], [p + "shape"]),
        helper.make_node("Constant", [], [p + "zero"], value=helper.make_tensor(p + "z", TensorProto.INT64, [], [0])),
        helper.make_node("Gather", [p + "shape", p + "zero"], [p + "rows"], axis=0),
        helper.make_node("Constant", [], [p + "true"], value=helper.make_tensor(p + "t", TensorProto.BOOL, [], [True])),
        helper.make_node("Loop", [p + "rows", p + "true"], [p + "stacked"], body=body),
        helper.make_node("Constant", [], [p + "axis1"], value=helper.make_tensor(p + "a1", TensorProto.INT64, [1], [1])),
        helper.make_node("Squeeze", [p + "stacked", p + "axis1"], [output]),
    ]
    return outer


def _outer_nodes(p: str, body, label_names: list[str], pairs: bool, thresholds: list[float] | None = None) -> list:
    """The loop over rows, then the label of each row's best probability (or, with thresholds,
    whether each label reaches its own)."""
    from onnx import TensorProto, helper

    n = len(label_names)
    outer = _loop_nodes(p, body, pairs)
    if thresholds is not None:
        return outer + [
            helper.make_node("Constant", [], [p + "limits"], value=helper.make_tensor(
                p + "th", TensorProto.FLOAT, [n], [float(t) for t in thresholds])),
            helper.make_node("GreaterOrEqual", [PROBABILITIES, p + "limits"], [SELECTED])]
    outer += [
        helper.make_node("ArgMax", [PROBABILITIES], [p + "best"], axis=1, keepdims=0),
        helper.make_node("Constant", [], [p + "names"], value=helper.make_tensor(
            p + "n", TensorProto.STRING, [n], [s.encode("utf-8") for s in label_names])),
        helper.make_node("Gather", [p + "names", p + "best"], [LABEL], axis=0),
    ]
    return outer


def _as_model(e2e, model, pairs: bool, max_length: int, truncation: str, outputs: list[str]):
    """The graph as a model with the source's opsets and metadata, plus the e2e interface."""
    from onnx import helper

    imports = [o for o in model.opset_import if o.domain != DOMAIN] + [helper.make_opsetid(DOMAIN, 1)]
    out = helper.make_model(e2e, opset_imports=imports, ir_version=model.ir_version,
                            producer_name="kdeploy", doc_string="text in, label out: tokenizer + model + softmax")
    out.metadata_props.extend(model.metadata_props)
    entry = out.metadata_props.add()
    entry.key, entry.value = E2E_METADATA_KEY, json.dumps(
        {"input": INPUT, "pairs": pairs, "outputs": outputs, "max_length": max_length,
         "truncation": truncation, "custom_ops": "onnxruntime-extensions"})
    return out


def with_load_time_fusions(src: Path, dst: Path, disabled_optimizers: list[str] | None = None) -> None:
    """The fusions onnxruntime applies when it loads `src` (Gelu, LayerNorm, MatMul+Add, …),
    written into `dst`. Inside the loop body they were not all applied, and an unfused int8
    model's probabilities then drifted up to 1e-2 from the same file run plainly; fused first,
    both run the same kernels."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(dst)
    ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"],
                         disabled_optimizers=disabled_optimizers or [])


def _fresh_prefix(taken: set[str]) -> str:
    prefix = "kdeploy_e2e_"
    while any(name.startswith(prefix) for name in taken):
        prefix = "_" + prefix
    return prefix


def e2e_session(path: Path, threads: int | None = None, disabled_optimizers: list[str] | None = None):
    """An onnxruntime session for an e2e model (the extensions' custom ops registered)."""
    from ..edge import quiet_extensions
    from ..modelio.onnx_session import create_session

    return create_session(path, "cpu", threads, disabled_optimizers=disabled_optimizers,
                          custom_ops_library=quiet_extensions())
