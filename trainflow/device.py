"""Which accelerator this run has: CUDA, then Apple MPS, then CPU, decided at run time."""

from __future__ import annotations

import functools
import platform


@functools.cache
def detect_accelerator() -> dict[str, str | None]:
    """Describe the best accelerator present; recorded in every run's lineage.

    Returns:
        ``{"device": "cuda"|"mps"|"cpu", "name": ..., "torch": version or None}``.
    """
    try:
        import torch
    except ImportError:  # torch is optional for the tabular families
        return {"device": "cpu", "name": platform.processor() or platform.machine(), "torch": None}
    if torch.cuda.is_available():
        return {"device": "cuda", "name": torch.cuda.get_device_name(0), "torch": torch.__version__}
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return {"device": "mps", "name": "Apple MPS", "torch": torch.__version__}
    return {"device": "cpu", "name": platform.processor() or platform.machine(), "torch": torch.__version__}


def pick_device() -> str:
    """The torch device to train on: cuda, then mps, then cpu."""
    return detect_accelerator()["device"]
