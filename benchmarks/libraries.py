"""The benchmark's models, built the same way in flowcourse, zuko, nflows and normflows.

Every library builds every model with the same architecture:

=========  ==========================================================================
model      layers
=========  ==========================================================================
MAF        5 masked affine autoregressive layers, MADE order reversed between layers
IAF        the same 5 layers, inverted: one pass to sample, ``D`` passes to score
RealNVP    6 affine couplings, the kept half alternating between layers
NICE       4 additive couplings, the kept half alternating, then a diagonal scaling
=========  ==========================================================================

Every conditioner (a MADE or a coupling's MLP) has two hidden layers of ``hidden``
units, and a coupling's conditioner reads only the ``D/2`` kept values and returns
values for the ``D/2`` changed ones, so matched models have the same parameter count
(the harness prints them side by side). Where a library has no such model, the
builder says how it was assembled from the library's own parts; ``NotAvailable``
marks a cell that cannot be built at all.

The ``MLP floor`` is not a flow: five plain (unmasked) MLPs of the MADEs' sizes, applied
like MAF's layers. It is what scoring a MAF would cost if masking were free, the floor
that no MAF implementation can beat.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = [
    "FLOOR",
    "LAYERS",
    "LIBRARIES",
    "MODELS",
    "Model",
    "NotAvailable",
    "UNCHECKED",
    "build",
    "parameter_count",
]

MODELS = ("MAF", "RealNVP", "NICE", "IAF")
LIBRARIES = ("flowcourse", "zuko", "nflows", "normflows")
#: flowcourse with ``set_validation(False)``: not in the default run; it shows what the
#: finiteness checks at the door cost (``--libraries ... "flowcourse (checks off)"``).
UNCHECKED = "flowcourse (checks off)"
FLOOR = "MLP floor"
#: Flow layers per model (a NICE also ends with one diagonal scaling).
LAYERS = {"MAF": 5, "IAF": 5, "RealNVP": 6, "NICE": 4}
HIDDEN_LAYERS = 2  # in every conditioner


class NotAvailable(Exception):
    """A library cannot build a model; the message says why (it goes into the results)."""


@dataclass
class Model:
    """A library's model reduced to the calls the benchmark times."""

    module: nn.Module
    log_prob: Callable[[Tensor], Tensor]
    sample: Callable[[int], Tensor] | None


def parameter_count(model: Model) -> int:
    """The number of trainable values (buffers such as masks are not counted)."""
    return sum(p.numel() for p in model.module.parameters() if p.requires_grad)


# ---------------------------------------------------------------------------- flowcourse


def _flowcourse(kind: str, features: int, hidden: int) -> Model:
    from flowcourse import models

    factory = {"MAF": models.maf, "IAF": models.iaf, "RealNVP": models.realnvp, "NICE": models.nice}
    flow = factory[kind](features, num_layers=LAYERS[kind], hidden_features=hidden)
    return Model(flow, flow.log_prob, flow.sample)


def _flowcourse_unchecked(kind: str, features: int, hidden: int) -> Model:
    from flowcourse.validation import set_validation

    model = _flowcourse(kind, features, hidden)

    def unchecked(method: Callable) -> Callable:
        def call(*args: object) -> Tensor:
            previous = set_validation(False)
            try:
                return method(*args)
            finally:
                set_validation(previous)

        return call

    return Model(model.module, unchecked(model.log_prob), unchecked(model.sample))


# ---------------------------------------------------------------------------------- zuko


def _zuko(kind: str, features: int, hidden: int) -> Model:
    import zuko
    from zuko.flows.autoregressive import MaskedAutoregressiveTransform
    from zuko.lazy import Flow, LazyInverse, UnconditionalTransform

    widths = (hidden,) * HIDDEN_LAYERS
    if kind == "MAF":  # orders alternate between ascending and descending
        flow = zuko.flows.MAF(features, transforms=LAYERS[kind], hidden_features=widths)
    elif kind == "IAF":  # zuko has no IAF class: its MAF's transforms, each inverted
        orders = [torch.arange(features), torch.arange(features).flip(0)]
        layers = [
            LazyInverse(
                MaskedAutoregressiveTransform(features, order=orders[i % 2], hidden_features=widths)
            )
            for i in range(LAYERS[kind])
        ]
        flow = Flow(layers, zuko.flows.MAF(features, transforms=1).base)
    elif kind == "RealNVP":  # alternating masks, conditioner reads the kept half
        flow = zuko.flows.RealNVP(features, transforms=LAYERS[kind], hidden_features=widths)
    else:  # NICE: zuko's coupling flow with its additive transform, then a scaling
        nice = zuko.flows.NICE(
            features,
            transforms=LAYERS[kind],
            univariate=zuko.transforms.AdditiveTransform,
            shapes=((),),
            hidden_features=widths,
        )
        scaling = UnconditionalTransform(_zuko_scaling, torch.zeros(features))
        flow = Flow([*nice.transform.transforms, scaling], nice.base)
    return Model(flow, lambda x: flow().log_prob(x), lambda n: flow().sample((n,)))


def _zuko_scaling(log_scale: Tensor) -> object:
    from zuko.transforms import DependentTransform, MonotonicAffineTransform

    return DependentTransform(MonotonicAffineTransform(torch.zeros_like(log_scale), log_scale), 1)


# -------------------------------------------------------------------------------- nflows


def _nflows(kind: str, features: int, hidden: int) -> Model:
    from nflows import distributions, flows, transforms
    from nflows.nn import nets

    def conditioner(in_features: int, out_features: int) -> nn.Module:
        return _ContextFree(nets.MLP((in_features,), (out_features,), [hidden] * HIDDEN_LAYERS))

    layers: list[nn.Module] = []
    for i in range(LAYERS[kind]):
        if kind in ("MAF", "IAF"):
            # One block without residual connections: the matrix shapes of a MADE with two
            # hidden layers (in -> hidden, hidden -> hidden, hidden -> out).
            layer = transforms.MaskedAffineAutoregressiveTransform(
                features, hidden, num_blocks=1, use_residual_blocks=False
            )
            if i > 0:
                layers.append(transforms.ReversePermutation(features))
            layers.append(layer if kind == "MAF" else transforms.InverseTransform(layer))
        else:
            mask = (torch.arange(features) + i) % 2 * 2 - 1  # +1 transformed, -1 kept
            coupling = (
                transforms.AffineCouplingTransform
                if kind == "RealNVP"
                else transforms.AdditiveCouplingTransform
            )
            layers.append(coupling(mask, conditioner))
    if kind == "NICE":
        layers.append(_nflows_scaling(features))
    flow = flows.Flow(
        transforms.CompositeTransform(layers), distributions.StandardNormal([features])
    )
    return Model(flow, flow.log_prob, flow.sample)


class _ContextFree(nn.Module):
    """Drop the ``context`` argument nflows passes to a coupling's network."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.net(x)


def _nflows_scaling(features: int) -> nn.Module:
    """NICE's learned diagonal scaling :math:`z = x e^{s}` as an nflows transform.

    nflows has no learned scaling without a shift (``ActNorm`` adds a shift and a
    data-dependent initialisation), so this is the few lines an nflows user writes.
    """
    from nflows.transforms import Transform

    class DiagonalScaling(Transform):
        def __init__(self) -> None:
            super().__init__()
            self.log_scale = nn.Parameter(torch.zeros(features))

        def forward(self, inputs: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
            return inputs * self.log_scale.exp(), self.log_scale.sum().expand(inputs.shape[0])

        def inverse(self, inputs: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
            logabsdet = -self.log_scale.sum().expand(inputs.shape[0])
            return inputs * (-self.log_scale).exp(), logabsdet

    return DiagonalScaling()


# ----------------------------------------------------------------------------- normflows


def _normflows(kind: str, features: int, hidden: int) -> Model:
    import normflows as nf

    layers: list[nn.Module] = []
    half = features // 2
    for i in range(LAYERS[kind]):
        if kind in ("MAF", "IAF"):
            layer = nf.flows.MaskedAffineAutoregressive(
                features, hidden, num_blocks=1, use_residual_blocks=False
            )
            # normflows layers map noise to data, and this one is one pass in that
            # direction: as it comes it is an IAF. Reversed, it is a MAF (one pass to
            # score, D to sample).
            layers.append(nf.flows.Reverse(layer) if kind == "MAF" else layer)
            if i < LAYERS[kind] - 1:
                layers.append(_normflows_reversal(features))
        else:
            out = 2 * (features - half) if kind == "RealNVP" else features - half
            net = nf.nets.MLP([half, *[hidden] * HIDDEN_LAYERS, out], init_zeros=True)
            layers.append(nf.flows.AffineCouplingBlock(net, scale=kind == "RealNVP"))
            layers.append(nf.flows.Permute(features, mode="swap"))
    if kind == "NICE":
        layers.append(nf.flows.AffineConstFlow((features,), scale=True, shift=False))
    base = nf.distributions.DiagGaussian(features, trainable=False)
    flow = nf.NormalizingFlow(q0=base, flows=layers)
    return Model(flow, flow.log_prob, lambda n: flow.sample(n)[0])


def _normflows_reversal(features: int) -> nn.Module:
    """normflows' ``Permute`` with the reversal as its permutation (it has no reversal)."""
    import normflows as nf

    layer = nf.flows.Permute(features, mode="shuffle")
    reversal = torch.arange(features).flip(0)
    layer.perm.copy_(reversal)
    layer.inv_perm.copy_(reversal)
    return layer


# ----------------------------------------------------------------------------- the floor


class MLPFloor(nn.Module):
    r"""MAF's scoring pass without the masks: the floor a MAF's ``log_prob`` cannot beat.

    Five MLPs with the MADEs' shapes, :math:`D \to H \to H \to 2D`, each giving a shift
    and a log-scale as in MAF, :math:`z = (x - \mu) e^{-\alpha}`, then the standard
    normal log-density. Not a flow (nothing makes it autoregressive); it only counts
    the arithmetic a MAF's scoring pass cannot avoid.
    """

    def __init__(self, features: int, hidden: int, num_layers: int) -> None:
        super().__init__()

        def mlp() -> nn.Module:
            widths = [features, *[hidden] * HIDDEN_LAYERS]
            layers: list[nn.Module] = []
            for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
                layers += [nn.Linear(n_in, n_out), nn.ReLU()]
            return nn.Sequential(*layers, nn.Linear(hidden, 2 * features))

        self.nets = nn.ModuleList(mlp() for _ in range(num_layers))

    def log_prob(self, x: Tensor) -> Tensor:
        total = x.new_zeros(x.shape[0])
        for net in self.nets:
            shift, log_scale = net(x).chunk(2, dim=1)
            x = (x - shift) * torch.exp(-log_scale)
            total = total - log_scale.sum(dim=1)
        return total - 0.5 * (x.square().sum(dim=1) + x.shape[1] * math.log(2 * math.pi))


def _floor(kind: str, features: int, hidden: int) -> Model:
    if kind != "MAF":
        raise NotAvailable("the MLP floor is the bound for MAF's scoring pass only")
    floor = MLPFloor(features, hidden, LAYERS[kind])
    return Model(floor, floor.log_prob, None)


BUILDERS: dict[str, Callable[[str, int, int], Model]] = {
    "flowcourse": _flowcourse,
    UNCHECKED: _flowcourse_unchecked,
    "zuko": _zuko,
    "nflows": _nflows,
    "normflows": _normflows,
    FLOOR: _floor,
}


def build(library: str, kind: str, features: int, hidden: int, seed: int = 0) -> Model:
    """Build ``kind`` on ``features`` dimensions with conditioners of width ``hidden``.

    Raises ``ImportError`` when the library is not installed and ``NotAvailable`` when it
    cannot build this model.
    """
    if kind not in MODELS:
        raise ValueError(f"expected a model in {MODELS}, got {kind!r}")
    if library not in BUILDERS:
        raise ValueError(f"expected a library in {tuple(BUILDERS)}, got {library!r}")
    torch.manual_seed(seed)
    return BUILDERS[library](kind, features, hidden)
