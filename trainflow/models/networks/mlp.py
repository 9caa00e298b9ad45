"""``mlp``: a tabular MLP with an embedding per categorical column (``MLPClassifier``, ``MLPRegressor``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from trainflow.models.networks.base import ClassifierNet, Net, RegressorNet
from trainflow.models.networks.loop import NNSettings


def _mlp_module(n_numeric: int, cardinalities: list[int], n_out: int, s: NNSettings):  # noqa: ANN202
    import torch
    from torch import nn

    class TabularMLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # code -1 (unknown) and -2.. are shifted to 0; every column gets one spare row for them
            self.embeddings = nn.ModuleList(nn.Embedding(c + 2, min(s.embedding_dim, (c + 2) // 2 + 1))
                                            for c in cardinalities)
            width = n_numeric + sum(e.embedding_dim for e in self.embeddings)
            layers: list[nn.Module] = []
            for h in s.hidden:
                layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(s.dropout)]
                width = h
            self.body = nn.Sequential(*layers)
            self.head = nn.Linear(width, n_out)

        def forward(self, numeric: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
            parts = [numeric] + [emb(codes[:, i]) for i, emb in enumerate(self.embeddings)]
            return self.head(self.body(torch.cat(parts, dim=1)))

    return TabularMLP()


class _MLPNet(Net):
    """Tabular MLP: numeric columns and an embedding per categorical code column (``spec["categorical"]``)."""

    def _learn(self, X: pd.DataFrame) -> dict:  # noqa: N803
        return {"cardinalities": [int(max(X[c].max(), 0)) + 1 for c in (self.spec or {}).get("categorical") or []]}

    def _inputs(self, X: pd.DataFrame) -> list:  # noqa: N803
        import torch

        cats = list((self.spec or {}).get("categorical") or [])
        numeric = np.nan_to_num(X.drop(columns=cats).to_numpy(dtype=np.float32))
        codes = (X[cats].to_numpy(dtype=np.int64) + 1 if cats else np.zeros((len(X), 0), dtype=np.int64))
        if cats:
            codes = np.clip(codes, 0, np.asarray(self.state_["cardinalities"])[None, :] + 1)
        return [torch.from_numpy(numeric), torch.from_numpy(codes)]

    exportable = True

    def _tensor_inputs(self, features: Any) -> list:
        import torch

        cats = list((self.spec or {}).get("categorical") or [])
        names = list(self.feature_names_in_)
        cat_index = [names.index(c) for c in cats]
        num_index = [i for i in range(len(names)) if i not in cat_index]
        numeric = torch.nan_to_num(features[:, num_index])
        if not cats:
            return [numeric, torch.zeros((features.shape[0], 0), dtype=torch.int64)]
        codes = features[:, cat_index].to(torch.int64) + 1
        top = torch.tensor(self.state_["cardinalities"], dtype=torch.int64) + 1
        return [numeric, torch.minimum(torch.clamp(codes, min=0), top)]

    def _module(self, n_out: int) -> Any:
        n_numeric = len(self.feature_names_in_) - len((self.spec or {}).get("categorical") or [])
        return _mlp_module(n_numeric, self.state_["cardinalities"], n_out, self.nn_settings)


class MLPClassifier(ClassifierNet, _MLPNet):
    """Tabular MLP classifier."""


class MLPRegressor(RegressorNet, _MLPNet):
    """Tabular MLP regressor."""
