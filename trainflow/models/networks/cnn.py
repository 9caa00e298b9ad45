"""``cnn``: a small CNN for images stored as pixel columns (``CNNClassifier``).

It resizes and standardises inside the network; the statistics are fitted on the training split and saved
with the weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from trainflow.models.networks.base import ClassifierNet, Net
from trainflow.models.networks.loop import NNSettings


def _cnn_module(shape: list[int], mean: float, std: float, n_out: int, s: NNSettings):  # noqa: ANN202
    import torch
    import torch.nn.functional as F  # noqa: N812
    from torch import nn

    channels, height, width = shape

    class ImageCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # the fitted standardisation travels with the weights (buffers are in the state dict)
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
            blocks: list[nn.Module] = []
            c_in = channels
            for c in s.channels:
                blocks += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                           nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
                c_in = c
            self.body = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(s.dropout))
            self.head = nn.Linear(c_in, n_out)

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            x = pixels.view(-1, channels, height, width)
            if (height, width) != (s.image_size, s.image_size):
                x = F.interpolate(x, size=(s.image_size, s.image_size), mode="bilinear", align_corners=False)
            return self.head(self.body((x - self.mean) / self.std))

    return ImageCNN()


class CNNClassifier(ClassifierNet, Net):
    """CNN over images stored as pixel columns (``spec["shape"]``: [C, H, W])."""

    eval_rows = 1024

    def _learn(self, X: pd.DataFrame) -> dict:  # noqa: N803
        pixels = X.to_numpy(dtype=np.float32)
        return {"mean": float(pixels.mean()), "std": float(pixels.std() or 1.0)}

    def _inputs(self, X: pd.DataFrame) -> list:  # noqa: N803
        import torch

        return [torch.from_numpy(np.nan_to_num(X.to_numpy(dtype=np.float32)))]

    exportable = True

    def _tensor_inputs(self, features: Any) -> list:
        import torch

        return [torch.nan_to_num(features)]

    def _module(self, n_out: int) -> Any:
        return _cnn_module(self.spec["shape"], self.state_["mean"], self.state_["std"], n_out, self.nn_settings)
