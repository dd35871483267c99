"""A GravNet-like toy built from ``particlegraph.nn`` layers, for the engine's LRP tests.

It has every structure the engine must follow in the MLPF model, without importing a task: an
input encoding that maps encoded columns back onto raw ones (a pass-through with a column map),
an MLP encoder with BatchNorm (folded), learned-kNN GravNet blocks (sum / mean / max), a skip
concatenation of every block, three heads on one shared representation and a head that reads
another head's output (regression on ``cat[z, logits]``), plus an output grammar
(``"class:b"``, ``"charge:+1"``, bare ``"energy"``). A helper module, not a test module.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from particlegraph.explain.lrp import OutputNames, Tracer, trace_gravnet
from particlegraph.nn.gravnet import GravNetConv
from particlegraph.nn.mlp import MLP, make_activation

#: Output grammar of the toy: 4 classes, a 3-way charge and 3 bare regression outputs.
TOY_OUTPUTS = OutputNames(
    heads={
        "class": ("a", "b", "c", "d"),
        "charge": ("-1", "0", "+1"),
        "regression": ("pt", "eta", "energy"),
    },
    bare=("regression",),
    aliases={"charge": {"1": "+1"}},
)
#: Every output of the toy, in head order (what a study explains together).
TOY_ALL = ("class:a", "class:b", "class:c", "class:d", "charge:+1", "pt", "eta", "energy")


class ToyGravNet(nn.Module):
    """``x`` (N, F) -> encoding (N, F + 1) -> encoder -> L GravNet blocks -> three heads.

    The encoding is ``[x_0 > 0, x_0 <= 0, tanh(x_1), x_2, ..., x_{F-1}]``: its columns 0 and 1
    both come from raw column 0 (``column_map``). ``blocks = 0`` gives the same model without
    message passing. Outputs: ``class`` (N, 4), ``charge`` (N, 3), ``regression`` (N, 3).
    """

    lrp_output_names = TOY_OUTPUTS
    lrp_prefix_check = True  # the wiring does not depend on N

    def __init__(self, f: int = 12, hidden: int = 8, blocks: int = 2, k: int = 4,
                 aggr: str = "sum", propagate: int = 5, space: int = 3) -> None:  # fmt: skip
        super().__init__()
        self.register_buffer("column_map", torch.tensor([0, 0, *range(1, f)]))
        enc = f + 1
        self.encoder = MLP(enc, hidden, hidden, 2, "elu", "batch", final_activation=True)
        self.blocks = nn.ModuleList(
            GravNetConv(hidden, hidden, space, propagate, k, aggr) for _ in range(blocks)
        )
        self.act = make_activation("elu")
        z_dim = enc + hidden * max(blocks, 1)
        self.class_head = MLP(z_dim, hidden, 4, 2, "elu", "batch")
        self.charge_head = MLP(z_dim, hidden, 3, 2, "elu", "batch")
        self.reg_head = MLP(z_dim + 4, hidden, 3, 2, "elu", "batch")

    def encode(self, x: Tensor) -> Tensor:
        pos = (x[:, :1] > 0).to(x.dtype)
        return torch.cat([pos, 1 - pos, torch.tanh(x[:, 1:2]), x[:, 2:]], dim=1)

    def forward(self, x: Tensor, batch: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        e = self.encode(x)
        h = self.encoder(e)
        embs = []
        for block in self.blocks:
            h = self.act(block(h, batch))
            embs.append(h)
        z = torch.cat([e, *embs] if embs else [e, h], dim=1)
        logits = self.class_head(z)
        return logits, self.charge_head(z), self.reg_head(torch.cat([z, logits], dim=1))

    def lrp_outputs(self, x: Tensor, batch: Tensor | None = None) -> dict[str, Tensor]:
        logits, charge, reg = self(x, batch)
        return {"class": logits, "charge": charge, "regression": reg}

    def lrp_trace(self, tr: Tracer, x: Tensor, batch: Tensor | None = None) -> dict[str, int]:
        e = tr.passthrough("encoding", 0, self.encode(x), self.column_map)
        h = tr.sequential("encoder", e, self.encoder)
        embs = []
        for i, block in enumerate(self.blocks):
            h = trace_gravnet(tr, f"blocks.{i}", h, block, batch)
            h = tr.activation(f"blocks.{i}.act", h, self.act)
            embs.append(h)
        z = tr.concat("z", [e, *embs] if embs else [e, h])
        logits = tr.sequential("class_head", z, self.class_head)
        charge = tr.sequential("charge_head", z, self.charge_head)
        reg = tr.sequential("reg_head", tr.concat("reg_input", [z, logits]), self.reg_head)
        return {"class": logits, "charge": charge, "regression": reg}


def toy_gravnet(
    aggr: str = "sum",
    blocks: int = 2,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    hidden: int = 8,
) -> ToyGravNet:
    """A seeded toy in eval mode with non-trivial BatchNorm statistics (so folding matters)."""
    torch.manual_seed(seed)
    model = ToyGravNet(hidden=hidden, blocks=blocks, aggr=aggr).to(dtype).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return model
