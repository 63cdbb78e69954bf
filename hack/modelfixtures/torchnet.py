"""The PyTorch tabular net of issue 12, trained on the freight data and exported by torch.onnx.

Two inputs: `numeric` (FP32, batch × 8 raw numeric features, standardised inside the net) and
`transport_mode` (INT64, batch, 0 ocean, 1 air, 2 rail, 3 road) looked up in an nn.Embedding.
LayerNorm over the concatenation, Linear, GELU, Linear, Sigmoid: one output `delay_risk`
(batch × 1). Exported with the real torch.onnx.export at opset 13 (LayerNorm decomposed into
ReduceMean/Sub/Pow/Sqrt/Div, GELU as Erf) and opset 17 (LayerNormalization), batch axes dynamic.
"""

import io

import numpy as np
import torch
from torch import nn


class TabularNet(nn.Module):
    def __init__(self, mean, std, n_modes=4, embed=4, hidden=32):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        self.mode = nn.Embedding(n_modes, embed)
        width = len(mean) + embed
        self.norm = nn.LayerNorm(width)
        self.hidden = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.out = nn.Linear(hidden, 1)

    def forward(self, numeric, transport_mode):
        x = torch.cat([(numeric - self.mean) / self.std, self.mode(transport_mode)], dim=1)
        return torch.sigmoid(self.out(self.act(self.hidden(self.norm(x)))))


def _prepare(numeric):
    # Raw values, as ingestion sends them: the net standardises them itself.
    return torch.from_numpy(numeric.astype(np.float32))


def train(data, seed, epochs=6, batch=64, lr=0.005):
    torch.manual_seed(seed)
    numeric = data.numeric()
    mean, std = numeric.mean(axis=0), numeric.std(axis=0)
    net = TabularNet(mean, std)
    x, m = _prepare(numeric), torch.from_numpy(data.mode)
    y = torch.from_numpy(data.late.astype(np.float32)).reshape(-1, 1)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = nn.BCELoss()
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = loss_fn(net(x[idx], m[idx]), y[idx])
            loss.backward()
            opt.step()
    net.eval()
    return net


def forward(net, numeric, mode):
    with torch.no_grad():
        return net(_prepare(numeric), torch.from_numpy(mode)).numpy()


def export(net, opset):
    """torch.onnx.export with dynamic batch axes; returns the file's bytes."""
    example = (torch.zeros(2, len(net.mean)), torch.zeros(2, dtype=torch.int64))
    buf = io.BytesIO()
    torch.onnx.export(
        net, example, buf, opset_version=opset,
        input_names=["numeric", "transport_mode"], output_names=["delay_risk"],
        dynamic_axes={"numeric": {0: "batch"}, "transport_mode": {0: "batch"},
                      "delay_risk": {0: "batch"}})
    return buf.getvalue()
