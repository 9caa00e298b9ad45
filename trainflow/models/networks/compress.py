"""The networks' compressed forms (``Family.compressions``): bfloat16 weights, torchao's int8 and global magnitude
pruning. The bf16 and pruned ones are saved as any network is (safetensors keeps bfloat16) and can serve;
torchao's int8 tensors have no safe file format here, so that one is measured only."""

from __future__ import annotations

import copy
import logging
from typing import Any

from sklearn.pipeline import Pipeline

from trainflow.models.family import Compressed, CompressRequest


def _with_network(pipeline: Pipeline, module: Any) -> Pipeline:
    """The pipeline with its network's torch module replaced."""
    net = copy.copy(pipeline.steps[-1][1])
    net.model_ = module.eval()
    return Pipeline(pipeline.steps[:-1] + [("model", net)])


def _tensor_bytes(module: Any) -> int:
    """Bytes of a module's weights as stored (an int8 tensor subclass counts its int8 data and scales)."""
    total = 0
    for t in module.state_dict().values():
        parts = [getattr(t, name) for name in getattr(t, "__tensor_flatten__", lambda: ([], None))()[0]] or [t]
        total += sum(p.numel() * p.element_size() for p in parts)
    return total


def network_compressions(r: CompressRequest) -> tuple[list[Compressed], list[dict[str, Any]]]:
    """``torch_bf16``, ``torch_int8`` (torchao's ``quantize_``: int8 weights, int8 dynamic activations; its size
    the native bundle's with the weights swapped for its own) and ``torch_pruned_<n>`` (``prune_sparsity`` of the
    Linear and Conv2d weights zeroed by global L1 magnitude, made permanent), the last also in ONNX Runtime."""
    import torch
    from torch.nn.utils import prune

    base = r.pipeline.steps[-1][1].model_
    rest = r.native_size - _tensor_bytes(base)  # the preprocessing, the settings: what every variant keeps
    made, skipped = [], []
    half = _with_network(r.pipeline, copy.deepcopy(base).to(torch.bfloat16))  # the network casts its inputs
    made.append(Compressed("torch_bf16", half, "bfloat16 weights and activations (safetensors)",
                           size=r.bundle_size(half)))
    try:
        for name in ("torchao", "torch.utils._pytree"):  # it logs every CUDA kernel it cannot load on a CPU
            logging.getLogger(name).setLevel(logging.ERROR)
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        quantised = copy.deepcopy(base)
        quantize_(quantised, Int8DynamicActivationInt8WeightConfig())
        made.append(Compressed("torch_int8", _with_network(r.pipeline, quantised),
                               "torchao quantize_: int8 weights, int8 dynamic activations", servable=False,
                               size=rest + _tensor_bytes(quantised)))
    except ImportError:
        skipped.append({"variant": "torch_int8", "runtime": "native", "status": "not applicable",
                        "reason": "torchao is not installed (pip install torchao)"})
    except Exception as exc:  # noqa: BLE001 - a quantiser failing on one layer type is a report row, not a crash
        skipped.append({"variant": "torch_int8", "runtime": "native", "status": "failed",
                        "reason": f"torchao: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"})
    sparsity = r.options["prune_sparsity"]
    if sparsity > 0:
        pruned = copy.deepcopy(base)
        weights = [(m, "weight") for m in pruned.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
        prune.global_unstructured(weights, pruning_method=prune.L1Unstructured, amount=sparsity)
        for m, name in weights:
            prune.remove(m, name)  # permanent: the zeros are the weights now
        small = _with_network(r.pipeline, pruned)
        zeros = sum(int((m.weight == 0).sum()) for m, _ in weights) / max(1, sum(m.weight.numel() for m, _ in weights))
        made.append(Compressed(f"torch_pruned_{round(100 * sparsity)}", small,
                               f"global L1 magnitude pruning, {zeros:.0%} of the weights zero (dense file)",
                               onnx=f"onnx_pruned_{round(100 * sparsity)}", size=r.bundle_size(small)))
    return made, skipped
