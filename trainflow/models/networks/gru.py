"""``gru``: a GRU or LSTM forecaster over a window of past values (``RNNForecaster``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from trainflow.models.networks.base import Net, RegressorNet
from trainflow.models.networks.loop import NNSettings


def _rnn_module(n_out: int, s: NNSettings):  # noqa: ANN202
    import torch
    from torch import nn

    class Forecaster(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            cell = nn.GRU if s.rnn_cell == "gru" else nn.LSTM
            self.rnn = cell(1, s.rnn_hidden, batch_first=True)
            self.head = nn.Sequential(nn.Dropout(s.dropout), nn.Linear(s.rnn_hidden, n_out))

        def forward(self, window: torch.Tensor) -> torch.Tensor:
            out, _ = self.rnn(window.unsqueeze(-1))
            return self.head(out[:, -1])

    return Forecaster()


class RNNForecaster(RegressorNet, Net):
    """GRU or LSTM forecaster: one step ahead from a window of past values (``spec["lags"]``, oldest first).

    It predicts the change from the window's last value (of the log when the series is positive),
    standardised by the training changes' spread.
    """

    def _windows(self, X: pd.DataFrame, state: dict) -> np.ndarray:  # noqa: N803
        w = X[self.spec["lags"]].to_numpy(dtype=np.float64)
        return np.log(np.maximum(w, 1e-12)) if state.get("log") else w

    def _learn(self, X: pd.DataFrame) -> dict:  # noqa: N803
        return {"log": bool((self._windows(X, {}) > 0).all()), "scale": 1.0}

    def _inputs(self, X: pd.DataFrame) -> list:  # noqa: N803
        import torch

        w = self._windows(X, self.state_)
        return [torch.from_numpy(((w - w[:, -1:]) / self.state_["scale"]).astype(np.float32))]

    def _module(self, n_out: int) -> Any:
        return _rnn_module(n_out, self.nn_settings)

    exportable = True

    def _tensor_windows(self, features: Any) -> Any:
        import torch

        names = list(self.feature_names_in_)
        w = features[:, [names.index(c) for c in self.spec["lags"]]]
        return torch.log(torch.clamp(w, min=1e-12)) if self.state_["log"] else w

    def _tensor_inputs(self, features: Any) -> list:
        w = self._tensor_windows(features)
        return [(w - w[:, -1:]) / self.state_["scale"]]

    def _tensor_outputs(self, raw, features):  # noqa: ANN001, ANN202
        import torch

        change = raw[:, :1].float() * self.state_["scale"] + self._tensor_windows(features)[:, -1:]
        return torch.exp(change) if self.state_["log"] else change

    def _encode_y(self, y: np.ndarray, fit: bool = False) -> np.ndarray:
        return y.astype(np.float64)[:, None]  # standardised as a change from the last value in ``_target``

    def _fit_target(self, X: pd.DataFrame, encoded: np.ndarray) -> None:  # noqa: N803
        self.state_["scale"] = float(np.std(self._target(X, encoded)) or 1.0)

    def _target(self, X: pd.DataFrame, encoded: np.ndarray) -> np.ndarray:  # noqa: N803
        last = self._windows(X, self.state_)[:, -1]
        values = np.log(np.maximum(encoded[:, 0], 1e-12)) if self.state_["log"] else encoded[:, 0]
        return ((values - last) / self.state_["scale"]).astype(np.float32)[:, None]

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        change = self._raw(X)[:, 0] * self.state_["scale"] + self._windows(X, self.state_)[:, -1]
        return np.exp(change) if self.state_["log"] else change
