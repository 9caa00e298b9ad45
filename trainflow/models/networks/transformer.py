"""``transformer``: a Transformer encoder over the tokens of a text column (``TextTransformerClassifier``).

The vocabulary is built on the training split and saved with the model.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from trainflow.models.networks.base import ClassifierNet, Net
from trainflow.models.networks.loop import NNSettings


def _text_module(vocab: int, n_out: int, s: NNSettings):  # noqa: ANN202
    import torch
    from torch import nn

    class TextTransformer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tokens = nn.Embedding(vocab, s.model_dim, padding_idx=0)
            self.positions = nn.Embedding(s.max_tokens, s.model_dim)
            layer = nn.TransformerEncoderLayer(s.model_dim, s.heads, dim_feedforward=2 * s.model_dim,
                                               dropout=s.dropout, batch_first=True, norm_first=True)
            # the setting's dropout is after the hidden layers (the attention block's and the feed-forward's
            # outputs), not on the attention weights: torch's fused attention kernels take no dropout on CPU, so
            # dropping weights there sends every training step to the unfused attention
            layer.self_attn.dropout = 0.0
            self.encoder = nn.TransformerEncoder(layer, s.layers, enable_nested_tensor=False)
            self.head = nn.Sequential(nn.LayerNorm(s.model_dim), nn.Dropout(s.dropout), nn.Linear(s.model_dim, n_out))

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            keep = int((ids != 0).sum(dim=1).max().clamp(min=1))  # drop padding columns no row uses
            return self.scores(ids[:, :keep])

        def scores(self, ids: torch.Tensor) -> torch.Tensor:
            """The class scores of token ids (0: padding, masked; at most ``max_tokens`` columns)."""
            pad = ids == 0
            pos = torch.arange(ids.shape[1], device=ids.device)
            h = self.encoder(self.tokens(ids) + self.positions(pos)[None], src_key_padding_mask=pad)
            weights = (~pad).unsqueeze(-1).to(h.dtype)
            return self.head((h * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1))  # mean over tokens

    return TextTransformer()


TOKEN_PATTERN = r"[a-z0-9']+"  # Python's re here, RE2 in the exported graph's tokeniser: the same tokens
TOKEN = re.compile(TOKEN_PATTERN)


def tokenize(text: str) -> list[str]:
    """Lower-cased words and numbers."""
    return TOKEN.findall(str(text).lower())


class TextTransformerClassifier(ClassifierNet, Net):
    """Transformer encoder over the tokens of one text column (``spec["text"]``)."""

    eval_rows = 256  # attention memory grows with rows x tokens^2

    def _learn(self, X: pd.DataFrame) -> dict:  # noqa: N803
        s = self.nn_settings
        counts = Counter(t for doc in X[self.spec["text"]].astype("str") for t in tokenize(doc))
        words = [w for w, c in counts.most_common(s.vocab_size - 3) if c >= s.min_token_count]
        return {"vocabulary": words}  # ids: 0 padding, 1 unknown, 2.. the words

    def _inputs(self, X: pd.DataFrame) -> list:  # noqa: N803
        import torch

        s = self.nn_settings
        lookup = {w: i + 2 for i, w in enumerate(self.state_["vocabulary"])}
        ids = np.zeros((len(X), s.max_tokens), dtype=np.int64)
        for r, doc in enumerate(X[self.spec["text"]].astype("str")):
            row = [lookup.get(t, 1) for t in tokenize(doc)][:s.max_tokens] or [1]
            ids[r, :len(row)] = row
        return [torch.from_numpy(ids)]

    def _module(self, n_out: int) -> Any:
        return _text_module(len(self.state_["vocabulary"]) + 2, n_out, self.nn_settings)

    exportable = True
    export_input = "token_ids"  # the exported graph tokenises with ONNX operators (``token_rules``)

    def token_rules(self) -> dict:
        """How ``_inputs`` turns text into ids, for a tokeniser built of ONNX operators: lower-case, the
        matches of ``pattern``, ids 2.. for the vocabulary's words in order, 1 for any other, at most
        ``max_tokens``, a row without tokens one unknown token."""
        return {"pattern": TOKEN_PATTERN, "vocabulary": list(self.state_["vocabulary"]),
                "max_tokens": self.nn_settings.max_tokens}

    def _tensor_inputs(self, features: Any) -> list:
        import torch

        first = features[:, :1]  # token ids, left-aligned: a row without tokens starts with padding
        return [torch.cat([torch.where(first == 0, torch.ones_like(first), first), features[:, 1:]], dim=1)]

    def _export_forward(self, model: Any, inputs: list) -> Any:
        return model.scores(*inputs)  # without the trimming to the batch's longest row (a shape from the data)
