"""A torch network's serving Pipeline as one ONNX graph (the networks' ``Family.to_onnx``)."""

from __future__ import annotations

import contextlib
import warnings
from typing import TYPE_CHECKING, Any

from sklearn.base import is_classifier
from sklearn.pipeline import Pipeline

from trainflow.onnxtools import (ONNX_OPSET, ExportError, convert, float32_step, initial_types, merged_encoding,
                                 text_column, tokeniser)

if TYPE_CHECKING:
    from trainflow.schema import DatasetSchema


def network_to_onnx(pipeline: Pipeline, schema: DatasetSchema, _: Any) -> bytes:
    """A torch network's Pipeline as one graph: a front that does what the network's Python input code does
    before torch (the preprocessing through skl2onnx, ending in the float32 input columns; for a text network,
    a tokeniser of ONNX operators, ending in token ids); the network through ``torch.onnx.export`` (the dynamo
    exporter) of its ``export_module``, which does the rest in torch (embedding codes, standardisation); the two
    joined on that tensor."""
    import io
    import logging

    import onnx
    import torch

    net = pipeline.steps[-1][1]
    module = net.export_module()
    if module is None:
        raise ExportError(f"no ONNX export for {type(net).__name__}")
    rows = torch.export.Dim("rows")
    if net.export_input == "token_ids":
        rules = net.token_rules()
        pre = tokeniser(text_column(schema), rules)
        example = torch.ones((2, min(4, rules["max_tokens"])), dtype=torch.int64)
        dims = {0: rows, 1: torch.export.Dim("tokens", min=1, max=rules["max_tokens"])}
    else:
        kept = [(n, s) for n, s in pipeline.steps[:-1] if not (isinstance(s, str) and s == "passthrough")]
        steps = merged_encoding([*kept, ("model", None)])[:-1]  # merging looks for a step after the encoding
        front = Pipeline([*steps, ("float32", float32_step())])
        pre = convert(front, initial_types(schema), None, f"preprocessing of the {type(net).__name__} pipeline")
        example = torch.zeros((2, len(net.feature_names_in_)), dtype=torch.float32)
        dims = {0: rows}
    outputs = ["label", "probabilities"] if is_classifier(net) else ["variable"]
    quiet = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [q.level for q in quiet]
    try:
        for q in quiet:
            q.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, (example,), dynamo=True, input_names=["features"],
                                        output_names=outputs, dynamic_shapes=(dims,), opset_version=ONNX_OPSET,
                                        verbose=False)
    except Exception as exc:  # noqa: BLE001 - the exporter raises many kinds; the report names it
        raise ExportError(f"torch.onnx.export of {type(net).__name__} failed: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200]}") from None
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)
    body = program.model_proto
    pre = onnx.compose.add_prefix(pre, "pre_", rename_inputs=False)  # its names never meet the network's
    body.ir_version = pre.ir_version = max(pre.ir_version, body.ir_version)
    imports = {o.domain: o.version for o in [*pre.opset_import, *body.opset_import]}
    for m in (pre, body):
        del m.opset_import[:]
        m.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in imports.items())
    merged = onnx.compose.merge_models(pre, body, io_map=[(pre.graph.output[0].name, "features")])
    del merged.opset_import[:]  # merge_models lists each model's imports: one per domain
    merged.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in imports.items())
    onnx.checker.check_model(merged)
    return merged.SerializeToString()
