"""Machine-learned particle flow (MLPF): a GravNet GNN over the detector elements of an event.

After Pata et al., "MLPF: efficient machine-learned particle-flow reconstruction using graph neural
networks", Eur. Phys. J. C 81, 381 (2021), arXiv:2101.08578. For every element (track or tower) the
network predicts a particle class, its charge and its kinematics. The regression is a *correction of
the element's own measurement*: log pT and log E ratios, an eta difference and a phi rotation (sin and
cos of delta phi, so it wraps at pi), all relative to the element; the last layer of the regression
head starts at zero weights and the bias of "no correction", so an untrained head returns the
measurement (a track's pT, eta, phi; a tower's Et, eta, phi and E) and training learns corrections.
Each correction is regressed in units of its element type's measurement precision
(:data:`TRACK_SCALES`, :data:`TOWER_SCALES`), so targets are of order one for both types: a track's
pT is known to ~1 % and its direction to ~1e-3 rad, a tower's energy to tens of percent and its
direction to its size (0.087); noise in the network's output is damped by the same factor, so a
track keeps its precision.

Computation graph (the LRP engine follows it exactly)::

    e = encoding(x, batch)                 # (N, 13|17) one-hot type, element features (+ links)
    h = encoder(e)                         # (N, H)
    h_l = act(block_l(h_{l-1}, batch))     # (N, H), l = 1..L   (FCN: L = 0)
    z = cat([e, h_1, ..., h_L])            # FCN: cat([e, h])
    logits = class_head(z)                 # (N, 6)
    charge_logits = charge_head(z)         # (N, 3) for charge -1, 0, +1
    regression = reg_head(cat([z, logits]))  # (N, 5)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from particlegraph.explain.lrp.models import trace_gravnet
from particlegraph.explain.lrp.output import OutputNames
from particlegraph.explain.lrp.program import Tracer
from particlegraph.nn.gravnet import GravNetConv
from particlegraph.nn.mlp import ACTIVATIONS, MLP, make_activation
from particlegraph.sim import elements as schema
from particlegraph.tasks.mlpf.links import NUM_LINK_FEATURES, link_features

NUM_ENCODED = 13
NUM_REGRESSION = 5
REGRESSION_NAMES = (
    "log_pt_ratio",
    "delta_eta_scaled",
    "sin_delta_phi_scaled",
    "cos_delta_phi",
    "log_energy_ratio",
)
#: Units of the five corrections for tracks and towers: (log pT ratio, delta eta, sin delta phi,
#: cos delta phi, log E ratio). The network output times the unit is the physical correction.
TRACK_SCALES = (0.02, 0.002, 0.002, 1.0, 0.02)
TOWER_SCALES = (1.0, 0.05, 0.05, 1.0, 1.0)
#: Output of an untrained regression head: no correction (ratio 1, delta 0, rotation by 0).
IDENTITY_REGRESSION = (0.0, 0.0, 0.0, 1.0, 0.0)
#: Clamp for predicted log ratios, so exp() stays finite on an untrained network.
MAX_LOG_RATIO = 10.0
#: Smallest element pT/E [GeV] used as the reference of a ratio.
MIN_REFERENCE = 1e-3
#: ``tower_reference: residual``: a tower's reference energy never falls below this fraction of
#: its measured energy (where the linked tracks' momenta exceed it, the reference is 10 % of E).
RESIDUAL_FLOOR = 0.1
TOWER_REFERENCES = ("energy", "residual")


@dataclass(frozen=True)
class MLPFConfig:
    """Architecture of :class:`MLPF`."""

    kind: str = "gravnet"  # "gravnet" (message passing) or "fcn" (same heads, no graph)
    hidden: int = 64  # width of encoder, GravNet outputs and heads
    num_blocks: int = 2  # GravNet layers (ignored for fcn)
    k: int = 16  # neighbours per element in the learned space, itself included
    space_dim: int = 4  # learned coordinate space
    propagate_dim: int = 32  # features sent along edges
    aggr: str = "sum"  # "sum" | "mean" | "max"
    num_encoder_layers: int = 2
    num_head_layers: int = 2
    norm: str = "batch"  # "batch" | "none"
    activation: str = "elu"
    dropout: float = 0.0
    knn_chunk_size: int = 0  # query points per kNN block; 0 = automatic (memory-bounded blocks)
    knn_bin_size: int | None = None  # None: exact kNN; B: binned kNN (linear time) in events > 3 B
    link_features: bool = False  # add the track-tower link features of tasks/mlpf/links.py
    #: What a tower's energy correction is relative to: "energy" (its measured E) or "residual"
    #: (E minus its linked tracks' momenta, floored at RESIDUAL_FLOOR x E: the rule-based
    #: particle flow's neutral energy, so an untrained head starts from the rule)
    tower_reference: str = "energy"

    def __post_init__(self) -> None:
        if self.kind not in ("gravnet", "fcn"):
            raise ValueError(f"kind must be 'gravnet' or 'fcn', got {self.kind!r}")
        if self.tower_reference not in TOWER_REFERENCES:
            raise ValueError(
                f"tower_reference must be one of {list(TOWER_REFERENCES)}, "
                f"got {self.tower_reference!r}"
            )
        if self.aggr not in ("sum", "mean", "max"):
            raise ValueError(f"aggr must be 'sum', 'mean' or 'max', got {self.aggr!r}")
        if self.norm not in ("batch", "none"):
            raise ValueError(f"norm must be 'batch' or 'none', got {self.norm!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}"
            )
        for name in (
            "hidden",
            "k",
            "space_dim",
            "propagate_dim",
            "num_encoder_layers",
            "num_head_layers",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.knn_bin_size is not None and self.knn_bin_size < self.k:
            raise ValueError(f"knn_bin_size must be >= k = {self.k}, got {self.knn_bin_size}")
        if self.num_blocks < 0 or not 0.0 <= self.dropout < 1.0:
            raise ValueError("num_blocks must be >= 0 and dropout in [0, 1)")


#: Names of the regression outputs (columns of ``MLPFOutput.regression``) for the explain commands.
#: The names are those of the decoded quantity; the neurons are the corrections of
#: :data:`REGRESSION_NAMES` (e.g. ``sin_phi`` is sin(delta phi) in units of the element's scale).
REGRESSION_OUTPUTS = ("pt", "eta", "sin_phi", "cos_phi", "energy")
#: Output grammar of the model for the explain commands: heads and their column names.
MLPF_OUTPUTS = OutputNames(
    heads={
        "class": schema.CLASS_NAMES,
        "charge": ("-1", "0", "+1"),
        "regression": REGRESSION_OUTPUTS,
    },
    bare=("regression",),
    aliases={"charge": {"1": "+1"}},
)


class MLPFOutput(NamedTuple):
    """Raw network outputs for N elements."""

    logits: Tensor  # (N, 6) class logits
    charge_logits: Tensor  # (N, 3) logits of charge -1, 0, +1
    regression: Tensor  # (N, 5) see REGRESSION_NAMES


class MLPFTargets(NamedTuple):
    """Training targets derived from ``ygen`` (see :func:`encode_targets`)."""

    cls: Tensor  # (N,) long class id
    charge: Tensor  # (N,) long, charge + 1 in {0, 1, 2}
    regression: Tensor  # (N, 5), zero where there is no particle
    has_particle: Tensor  # (N,) bool


class InputEncoding(nn.Module):
    """Element-type-aware encoding of the 12 X columns into 13 (17 with links) network inputs.

    Columns: ``[is_tower, is_track, log1p(pt|Et), eta, sin phi, cos phi, log1p(p|E),
    eta_outer | log1p(E_em), sin phi_outer | log1p(E_had), cos phi_outer, charge, is_muon, is_electron]``,
    then with ``link=True`` the four track-tower link features of
    :func:`~particlegraph.tasks.mlpf.links.link_features`.
    Every other transform acts on one element's own values, so LRP relevance of an encoded column
    belongs to the X column given by :attr:`column_map`; the link features, which summarise the
    element's linked tracks or tower, are attributed to the element's own ``p|E`` column.
    """

    column_map: Tensor

    def __init__(self, link: bool = False) -> None:
        super().__init__()
        self.link = link
        cols = [0, 0, *range(1, 12)] + [5] * (NUM_LINK_FEATURES if link else 0)
        self.register_buffer("column_map", torch.tensor(cols, dtype=torch.long))

    @property
    def num_outputs(self) -> int:
        """Width of the encoding."""
        return int(self.column_map.numel())

    def forward(self, x: Tensor, batch: Tensor | None = None) -> Tensor:
        is_tower = (x[:, 0] == schema.ELEM_TOWER).to(x.dtype)
        is_track = (x[:, 0] == schema.ELEM_TRACK).to(x.dtype)
        energy_like = torch.log1p(x[:, [1, 5]].clamp_min(0.0))  # pt|Et, p|E
        # Columns 6, 7 are energies for towers (log-compressed) and angles for tracks (kept).
        c67 = torch.where(is_tower[:, None] > 0, torch.log1p(x[:, 6:8].clamp_min(0.0)), x[:, 6:8])
        cols = [
            is_tower[:, None],
            is_track[:, None],
            energy_like[:, :1],
            x[:, 2:5],
            energy_like[:, 1:],
            c67,
            x[:, 8:12],
        ]
        if self.link:
            cols.append(link_features(x, batch))
        return torch.cat(cols, dim=-1)  # (N, 13) or (N, 17)


class MLPF(nn.Module):
    """MLPF network; ``cfg.kind = "fcn"`` gives the same model without message passing.

    Shapes:
        x (N, 12) raw element features, batch (N,) or None -> :class:`MLPFOutput`
    """

    def __init__(self, cfg: MLPFConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or MLPFConfig()
        h = cfg.hidden
        self.encoding = InputEncoding(cfg.link_features)
        num_encoded = self.encoding.num_outputs
        self.encoder = MLP(
            num_encoded, h, h, cfg.num_encoder_layers, cfg.activation, cfg.norm, cfg.dropout,
            final_activation=True,
        )  # fmt: skip
        num_blocks = cfg.num_blocks if cfg.kind == "gravnet" else 0
        self.blocks = nn.ModuleList(
            GravNetConv(
                h,
                h,
                cfg.space_dim,
                cfg.propagate_dim,
                cfg.k,
                cfg.aggr,
                cfg.knn_chunk_size,
                cfg.knn_bin_size,
            )
            for _ in range(num_blocks)
        )
        self.act = make_activation(cfg.activation)
        z_dim = num_encoded + h * max(num_blocks, 1)

        def head(in_dim: int, out_dim: int) -> MLP:
            return MLP(
                in_dim, h, out_dim, cfg.num_head_layers, cfg.activation, cfg.norm, cfg.dropout
            )

        self.class_head = head(z_dim, schema.NUM_CLASSES)
        self.charge_head = head(z_dim, 3)
        self.reg_head = head(z_dim + schema.NUM_CLASSES, NUM_REGRESSION)
        self.reset_regression_head()

    def reset_regression_head(self) -> None:
        """Zero the last regression layer's weights, bias = "no correction" (the measurement).

        The gradient of that layer's weights is non-zero from the first step (its input is), so
        training moves away from the identity; earlier layers receive gradient from the second step.
        """
        last = self.reg_head[-1]
        assert isinstance(last, nn.Linear)
        with torch.no_grad():
            last.weight.zero_()
            last.bias.copy_(torch.tensor(IDENTITY_REGRESSION))

    def embed(self, x: Tensor, batch: Tensor | None = None) -> Tensor:
        """The shared representation ``z`` (N, E + H * max(L, 1)) fed to the heads (E = 13 or 17)."""
        e = self.encoding(x, batch)
        h = self.encoder(e)
        if not self.blocks:
            return torch.cat([e, h], dim=-1)
        embs = []
        for block in self.blocks:
            h = self.act(block(h, batch))
            embs.append(h)
        return torch.cat([e, *embs], dim=-1)

    def forward(self, x: Tensor, batch: Tensor | None = None) -> MLPFOutput:
        z = self.embed(x, batch)
        logits = self.class_head(z)
        charge_logits = self.charge_head(z)
        regression = self.reg_head(torch.cat([z, logits], dim=-1))
        return MLPFOutput(logits, charge_logits, regression)

    # --- LRP adapter (see particlegraph.explain.lrp.models) ---------------------------------
    #: Names of the output columns, for ``--output class:photon``, ``pt``, ``charge:+1``.
    lrp_output_names = MLPF_OUTPUTS
    #: The wiring does not depend on N, so big events are checked on their first elements.
    lrp_prefix_check = True

    def lrp_outputs(self, x: Tensor, batch: Tensor | None = None) -> dict[str, Tensor]:
        """The model's outputs under the names of :meth:`lrp_trace`."""
        out = self(x, batch)
        return {"class": out[0], "charge": out[1], "regression": out[2]}

    def lrp_trace(self, tr: Tracer, x: Tensor, batch: Tensor | None = None) -> dict[str, int]:
        """Record the forward pass (GravNet or FCN) on ``x`` (N, 12) for LRP.

        Outputs: ``"class"`` (N, 6), ``"charge"`` (N, 3), ``"regression"`` (N, 5); a class logit
        never passes through ``reg_head``, the regression consumes the class logits.
        """
        e = tr.passthrough("encoding", 0, self.encoding(x, batch), self.encoding.column_map)
        h = tr.sequential("encoder", e, self.encoder)
        embs = []
        for i, block in enumerate(self.blocks):
            h = trace_gravnet(tr, f"blocks.{i}", h, block, batch)
            h = tr.activation(f"blocks.{i}.act", h, self.act)
            embs.append(h)
        z = tr.concat("z", [e, *embs] if embs else [e, h])
        logits = tr.sequential("class_head", z, self.class_head)
        charge = tr.sequential("charge_head", z, self.charge_head)
        reg_in = tr.concat("reg_input", [z, logits])
        reg = tr.sequential("reg_head", reg_in, self.reg_head)
        return {"class": logits, "charge": charge, "regression": reg}


def tower_residual_fraction(x: Tensor, batch: Tensor | None = None) -> Tensor:
    """Per element (N,): ``max(E - P, RESIDUAL_FLOOR * E) / E`` for towers (P = summed momentum of
    the tracks linked to the tower, :func:`~particlegraph.tasks.mlpf.links.link_features`), 1 for
    tracks and for towers without energy. ``x`` (N, 12), ``batch`` (N,) sorted event index."""
    link = link_features(x, batch)
    energy = x[:, 5]
    linked_p = torch.expm1(link[:, 0].to(energy.dtype))
    safe = torch.where(energy > 0, energy, torch.ones_like(energy))
    frac = ((energy - linked_p) / safe).clamp(RESIDUAL_FLOOR, 1.0)
    is_tower = (x[:, 0] == schema.ELEM_TOWER) & (energy > 0)
    return torch.where(is_tower, frac, torch.ones_like(frac))


def _element_reference(
    x: Tensor, batch: Tensor | None = None, tower_reference: str = "energy"
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The element's own measurement, the reference of the regression (each (N,)).

    Returns ``(pT|Et [GeV], eta, sin phi, cos phi, p|E [GeV])``; (sin, cos) normalised to a unit
    vector so that a rotation by delta phi stays a rotation; a (0, 0) pair reads as phi = 0. With
    ``tower_reference="residual"`` a tower's Et and E are scaled by
    :func:`tower_residual_fraction` (the rule-based neutral energy left after its tracks).
    """
    norm = torch.sqrt(x[:, 3] ** 2 + x[:, 4] ** 2)
    valid = norm > 1e-9
    safe = torch.where(valid, norm, torch.ones_like(norm))
    sin_ref = torch.where(valid, x[:, 3] / safe, torch.zeros_like(norm))
    cos_ref = torch.where(valid, x[:, 4] / safe, torch.ones_like(norm))
    scale = tower_residual_fraction(x, batch) if tower_reference == "residual" else None
    pt, energy = (x[:, 1], x[:, 5]) if scale is None else (x[:, 1] * scale, x[:, 5] * scale)
    return (
        pt.clamp_min(MIN_REFERENCE),
        x[:, 2],
        sin_ref,
        cos_ref,
        energy.clamp_min(MIN_REFERENCE),
    )


def regression_scales(x: Tensor) -> Tensor:
    """Units (N, 5) of the regression corrections: :data:`TRACK_SCALES` or :data:`TOWER_SCALES`."""
    is_track = (x[:, 0] == schema.ELEM_TRACK)[:, None]
    track = x.new_tensor(TRACK_SCALES).expand(len(x), -1)
    tower = x.new_tensor(TOWER_SCALES).expand(len(x), -1)
    return torch.where(is_track, track, tower)


def rotate(sin_a: Tensor, cos_a: Tensor, sin_b: Tensor, cos_b: Tensor) -> tuple[Tensor, Tensor]:
    """``(sin(a + b), cos(a + b))`` from the sines and cosines of a and b (angle addition)."""
    return sin_a * cos_b + cos_a * sin_b, cos_a * cos_b - sin_a * sin_b


def encode_targets(
    x: Tensor, ygen: Tensor, batch: Tensor | None = None, tower_reference: str = "energy"
) -> MLPFTargets:
    """Turn ``ygen`` (N, 7) into class, charge and relative-regression targets for elements ``x`` (N, 12).

    Regression targets (N, 5), the corrections of :data:`REGRESSION_NAMES` divided by the
    element's units (:func:`regression_scales`): ``log(pT_gen / pT_elem)``, ``eta_gen - eta_elem``,
    ``sin(phi_gen - phi_elem)``, ``cos(phi_gen - phi_elem)``, ``log(E_gen / E_elem)``.
    The rotation is computed from sines and cosines, so it wraps at pi: an element at
    phi = pi - 0.05 and a particle at -pi + 0.05 differ by +0.1. Rows without a particle hold the
    identity (no correction). ``batch`` (N,) and ``tower_reference`` (the model's
    :attr:`MLPFConfig.tower_reference`) choose the towers' reference, see
    :func:`_element_reference`.
    """
    cls = ygen[:, schema.Y_PID].round().long()
    has = cls != schema.ParticleClass.NONE
    charge = (ygen[:, schema.Y_CHARGE].round().long() + 1).clamp(0, 2)
    pt_ref, eta_ref, sin_ref, cos_ref, e_ref = _element_reference(x, batch, tower_reference)
    # rotation by -phi_elem: (sin, cos)(phi_gen - phi_elem)
    sin_d, cos_d = rotate(ygen[:, schema.Y_SIN_PHI], ygen[:, schema.Y_COS_PHI], -sin_ref, cos_ref)
    reg = torch.stack(
        [
            torch.log(ygen[:, schema.Y_PT].clamp_min(MIN_REFERENCE) / pt_ref),
            ygen[:, schema.Y_ETA] - eta_ref,
            sin_d,
            cos_d,
            torch.log(ygen[:, schema.Y_ENERGY].clamp_min(MIN_REFERENCE) / e_ref),
        ],
        dim=-1,
    ) / regression_scales(x)
    identity = reg.new_tensor(IDENTITY_REGRESSION).expand_as(reg)
    reg = torch.where(has[:, None], reg, identity)
    return MLPFTargets(cls, charge, reg, has)


def decode_predictions(
    x: Tensor,
    out: MLPFOutput,
    class_offsets: Tensor | None = None,
    offset_max_pt: float | None = None,
    batch: Tensor | None = None,
    tower_reference: str = "energy",
) -> Tensor:
    """Physical predictions (N, 7) in the ygen layout: pid, charge, pT, eta, sin phi, cos phi, E.

    The class is the arg-max of ``logits + class_offsets`` (the operating point, a (6,) tensor of
    log-odds shifts chosen on validation events, :mod:`~particlegraph.tasks.mlpf.operating_point`;
    None = plain arg-max), on elements whose pT|Et is below ``offset_max_pt`` [GeV] (None: all);
    charged classes get charge -1 or +1 (whichever is more likely), neutral
    classes 0; rows predicted as class 0 are all zero, as in ygen. The kinematics are the element's
    measurement corrected by the regression (see :func:`encode_targets`; ``batch`` and
    ``tower_reference`` as there: use the model's).
    """
    logits = out.logits.float()
    if class_offsets is not None:
        shift = class_offsets.to(logits.device, logits.dtype)[None, :]
        if offset_max_pt is not None:
            shift = shift * (x[:, 1] < offset_max_pt).to(logits.dtype)[:, None]
        logits = logits + shift
    pid = logits.argmax(-1)
    charged = (
        (pid == schema.ParticleClass.CHARGED_HADRON)
        | (pid == schema.ParticleClass.ELECTRON)
        | (pid == schema.ParticleClass.MUON)
    )
    sign = torch.where(out.charge_logits[:, 2] >= out.charge_logits[:, 0], 1.0, -1.0)
    charge = torch.where(charged, sign, torch.zeros_like(sign))
    pt_ref, eta_ref, sin_ref, cos_ref, e_ref = _element_reference(x.float(), batch, tower_reference)
    r = out.regression.float() * regression_scales(x.float())  # physical corrections
    pt = pt_ref * torch.exp(r[:, 0].clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO))
    eta = eta_ref + r[:, 1]
    sin_d, cos_d = r[:, 2], r[:, 3]
    norm = torch.sqrt(sin_d**2 + cos_d**2).clamp_min(1e-6)
    sin_phi, cos_phi = rotate(sin_ref, cos_ref, sin_d / norm, cos_d / norm)
    energy = e_ref * torch.exp(r[:, 4].clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO))
    energy = torch.maximum(energy, pt)  # E >= pT for any massive or massless particle
    y = torch.stack([pid.to(r.dtype), charge, pt, eta, sin_phi, cos_phi, energy], dim=-1)
    return torch.where((pid != 0)[:, None], y, torch.zeros_like(y))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
