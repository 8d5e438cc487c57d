r"""Ready-made flows for the book's data: one factory per model, each returning a
:class:`~flowcourse.core.Flow`.

Every factory builds its model from the package's layers (nothing here is a new layer),
puts a standard normal base under it, and records how it was called in
``flow.config = {"factory": name, "kwargs": {...}}``. The kwargs are plain numbers,
strings and lists, so :func:`flowcourse.io.save` can write them next to the weights and
:func:`flowcourse.io.load` can rebuild the model with
``getattr(flowcourse.models, name)(**kwargs)``. That is also why the Glow factory picks
its permutation and coupling *by name* (``permutation="conv1x1"``) rather than taking a
class: a class cannot be written into a checkpoint's JSON, a name can.

``seed`` fixes every random choice a factory makes (initial weights, random
permutations, initial planar/radial directions), without touching the global random
state: the same call gives the same model on every machine.

Vector models take ``(batch, features)``; image models take ``(batch, channels, height,
width)`` in logit space (see the chapter *RealNVP* for the dequantization and logit
transform that get the 8x8 digits there).

Example:
    >>> from flowcourse import models
    >>> flow = models.maf(features=2, num_layers=5, hidden_features=64)
    >>> flow.config["factory"], flow.config["kwargs"]["hidden_features"]
    ('maf', 64)
    >>> flow.log_prob(torch.zeros(3, 2)).shape
    torch.Size([3])
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch

from flowcourse.autoregressive import InverseAutoregressive, MaskedAffineAutoregressive
from flowcourse.continuous import ContinuousFlow, VelocityMLP
from flowcourse.core import Compose, Flow, StandardNormal, Transform
from flowcourse.coupling import (
    AdditiveCoupling,
    AffineCoupling,
    DiagonalScaling,
    alternating_mask,
    half_mask,
    realnvp_multiscale,
)
from flowcourse.glow import Invertible1x1Conv, LUInvertible1x1Conv, glow_multiscale
from flowcourse.permutations import RandomPermutation, ReversePermutation
from flowcourse.seeding import seeded
from flowcourse.splines import MaskedRationalQuadraticAutoregressive, RationalQuadraticCoupling
from flowcourse.validation import check_int, check_positive_int
from flowcourse.vi import Planar, Radial

__all__ = [
    "nice",
    "realnvp",
    "maf",
    "iaf",
    "planar",
    "radial",
    "realnvp_image",
    "glow",
    "nsf_coupling",
    "nsf_autoregressive",
    "cnf",
    "GLOW_PERMUTATIONS",
    "GLOW_COUPLINGS",
]

#: The names of Glow's channel mixings, each a ``(channels, seed) -> Transform``.
#: Names, not classes, because ``flow.config`` goes into a checkpoint's JSON.
GLOW_PERMUTATIONS: dict[str, Callable[[int, int], Transform]] = {
    "conv1x1": lambda channels, seed: LUInvertible1x1Conv(channels, seed=seed),
    "conv1x1_full": lambda channels, seed: Invertible1x1Conv(channels, seed=seed),
    "shuffle": lambda channels, seed: RandomPermutation(channels, seed=seed),
    "reverse": lambda channels, seed: ReversePermutation(channels),
}

#: The names of Glow's couplings, each a ``(mask, channels, hidden_channels) -> Transform``.
GLOW_COUPLINGS: dict[str, Callable[..., Transform]] = {
    "affine": AffineCoupling.for_images,
    "additive": AdditiveCoupling.for_images,
}


def nice(
    features: int,
    num_layers: int = 4,
    hidden_features: int = 64,
    num_hidden_layers: int = 2,
    seed: int = 0,
    context_features: int = 0,
) -> Flow:
    r"""NICE (Dinh et al. 2015): additive couplings, then a diagonal scaling.

    Layer :math:`k` keeps every other feature (the parity alternates between layers) and
    shifts the rest, :math:`z_{1-m} = x_{1-m} + t_k(x_m)`, which preserves volume; the
    final :class:`~flowcourse.coupling.DiagonalScaling` :math:`z = x \odot e^{s}` is the
    only volume change, so :math:`\log|\det \partial z/\partial x| = \sum_i s_i`, the same
    for every point. Conditioners are MLPs with ``num_hidden_layers`` hidden layers of
    ``hidden_features`` units, from the kept half to the shifts of the other half; with
    ``context_features`` they also read a context. Taught in the chapter *NICE*.

    Example:
        >>> flow = nice(features=2, num_layers=4, hidden_features=16)
        >>> flow.sample(3).shape
        torch.Size([3, 2])
    """
    config = _config("nice", locals())
    _check_coupling_features(features)
    check_positive_int(num_layers, "num_layers")
    with seeded(seed):
        layers: list[Transform] = [
            AdditiveCoupling.for_vectors(
                alternating_mask(features, parity=k % 2),
                hidden_features,
                num_hidden_layers,
                context_features,
            )
            for k in range(num_layers)
        ]
        layers.append(DiagonalScaling(features))
    return _flow(Compose(*layers), features, config, context_features)


def realnvp(
    features: int,
    num_layers: int = 6,
    hidden_features: int = 64,
    num_hidden_layers: int = 2,
    log_scale_bound: float = 3.0,
    seed: int = 0,
    context_features: int = 0,
) -> Flow:
    r"""RealNVP on vectors (Dinh et al. 2017): affine couplings with reversals between them.

    Each layer keeps the first half of the features and scales and shifts the rest,

    .. math::

        z_{1-m} = x_{1-m} \odot e^{s(x_m)} + t(x_m), \qquad
        \log\left|\det \frac{\partial z}{\partial x}\right| = \sum_i s_i(x_m),

    and a :class:`~flowcourse.permutations.ReversePermutation` between layers swaps the
    roles of the halves, so every feature is transformed by every other layer. The
    log-scale is soft-clamped to ``(-log_scale_bound, log_scale_bound)``. Conditioners are
    :class:`~flowcourse.nets.CouplingMLP` s with ``num_hidden_layers`` hidden layers of
    ``hidden_features`` units, from the kept half (and a context of
    ``context_features`` values, if any) to :math:`s` and :math:`t` of the other half:
    the parameters of nflows', zuko's and normflows' RealNVP of the same widths.
    Taught in the chapter *RealNVP*; for images use :func:`realnvp_image`.

    Example:
        >>> flow = realnvp(features=2, num_layers=6, hidden_features=16)
        >>> flow.log_prob(torch.zeros(1, 2))
        tensor([-1.8379], grad_fn=<AddBackward0>)
    """
    config = _config("realnvp", locals())

    def coupling(mask: torch.Tensor) -> Transform:
        return AffineCoupling.for_vectors(
            mask, hidden_features, num_hidden_layers, log_scale_bound, context_features
        )

    return _coupling_flow(config, coupling, features, num_layers, seed, context_features)


def maf(
    features: int,
    num_layers: int = 5,
    hidden_features: int = 64,
    num_hidden_layers: int = 2,
    seed: int = 0,
    context_features: int = 0,
) -> Flow:
    r"""A masked autoregressive flow (Papamakarios et al. 2017) for density estimation.

    ``num_layers`` :class:`~flowcourse.autoregressive.MaskedAffineAutoregressive` layers,

    .. math::

        z_i = (x_i - \mu_i(x_{<i}))\, e^{-\alpha_i(x_{<i})}, \qquad
        \log\left|\det \frac{\partial z}{\partial x}\right| = -\sum_i \alpha_i,

    whose MADE (Germain et al. 2015) orders alternate between :math:`1, \dots, D` and
    :math:`D, \dots, 1`: reversing the order between layers lets every feature condition
    every other. Scoring data is one pass per layer; sampling is :math:`D` passes.
    Each MADE has ``num_hidden_layers`` hidden layers of ``hidden_features`` units; with
    ``context_features`` it also reads a context, and the flow models
    :math:`p(x \mid c)`. Taught in the chapter *MAF*.

    Example:
        >>> flow = maf(features=3, num_layers=5, hidden_features=16)
        >>> flow.sample(4).shape
        torch.Size([4, 3])
        >>> conditional = maf(features=3, hidden_features=16, context_features=2)
        >>> conditional.log_prob(torch.zeros(4, 3), context=torch.ones(4, 2)).shape
        torch.Size([4])
    """
    config = _config("maf", locals())
    return _autoregressive_flow(
        config,
        MaskedAffineAutoregressive,
        features,
        num_layers,
        hidden_features,
        num_hidden_layers,
        seed,
        context_features,
    )


def iaf(
    features: int,
    num_layers: int = 5,
    hidden_features: int = 64,
    num_hidden_layers: int = 2,
    seed: int = 0,
    context_features: int = 0,
) -> Flow:
    r"""An inverse autoregressive flow (Kingma et al. 2016) for variational inference.

    ``num_layers`` :class:`~flowcourse.autoregressive.InverseAutoregressive` layers, whose
    sampling direction (noise to data) is one pass each,

    .. math::

        x_i = z_i\, e^{\alpha_i(z_{<i})} + \mu_i(z_{<i}), \qquad
        \log\left|\det \frac{\partial x}{\partial z}\right| = \sum_i \alpha_i,

    with the MADE orders reversed between layers. ``flow.sample_and_log_prob(n)`` is
    therefore cheap (the reverse-KL objective of variational inference), while
    ``flow.log_prob(x)`` of outside data takes :math:`D` passes per layer. With
    ``context_features`` every MADE also reads a context.
    Taught in the chapter *IAF*.

    Example:
        >>> flow = iaf(features=2, num_layers=5, hidden_features=16)
        >>> x, log_prob = flow.sample_and_log_prob(4)
        >>> x.shape, log_prob.shape
        (torch.Size([4, 2]), torch.Size([4]))
    """
    config = _config("iaf", locals())
    return _autoregressive_flow(
        config,
        InverseAutoregressive,
        features,
        num_layers,
        hidden_features,
        num_hidden_layers,
        seed,
        context_features,
    )


def planar(features: int, num_layers: int = 16, seed: int = 0) -> Flow:
    r"""A stack of planar flows (Rezende & Mohamed 2015) for variational inference.

    Each layer, in the sampling direction, is

    .. math::

        x = z + \hat u \tanh(w^\top z + b), \qquad
        \log\left|\det \frac{\partial x}{\partial z}\right|
        = \log\left|1 + \hat u^\top (1 - \tanh^2(w^\top z + b))\, w\right|.

    Sampling with its density (``sample_and_log_prob``) is closed-form; ``log_prob`` of
    outside data solves a scalar equation per layer (see :class:`~flowcourse.vi.Planar`).
    Layer :math:`k` draws its initial :math:`u, w` from ``seed + k``.
    Taught in the chapter *Variational inference*.

    Example:
        >>> flow = planar(features=2, num_layers=16)
        >>> flow.sample_and_log_prob(5)[1].shape
        torch.Size([5])
    """
    config = _config("planar", locals())
    return _stack_flow(config, Planar, features, num_layers, seed)


def radial(features: int, num_layers: int = 16, seed: int = 0) -> Flow:
    r"""A stack of radial flows (Rezende & Mohamed 2015) for variational inference.

    Each layer contracts or expands space around a centre :math:`z_0`; in the sampling
    direction, with :math:`r = \lVert z - z_0\rVert` and :math:`h = 1/(\alpha + r)`,

    .. math::

        x = z + \beta h (z - z_0), \qquad
        \log\left|\det \frac{\partial x}{\partial z}\right|
        = (D - 1)\log(1 + \beta h) + \log(1 + \alpha \beta h^2),

    with :math:`\alpha > 0, \beta > -\alpha` (see :class:`~flowcourse.vi.Radial`).
    Layer :math:`k` draws its initial centre, :math:`\alpha` and :math:`\beta` from
    ``seed + k``.
    Taught in the chapter *Variational inference*.

    Example:
        >>> flow = radial(features=2, num_layers=16)
        >>> flow.sample(5).shape
        torch.Size([5, 2])
    """
    config = _config("radial", locals())
    return _stack_flow(config, Radial, features, num_layers, seed)


def realnvp_image(
    image_shape: Sequence[int] = (1, 8, 8),
    num_scales: int = 2,
    hidden_channels: int = 64,
    num_hidden_layers: int = 1,
    log_scale_bound: float = 3.0,
    seed: int = 0,
) -> Flow:
    r"""RealNVP's multi-scale image model (Dinh et al. 2017, Sec. 3.6) for the 8x8 digits.

    Checkerboard affine couplings, a squeeze, channel-wise affine couplings, then half of
    the variables are factored out and the rest go to the next scale (see
    :func:`~flowcourse.coupling.realnvp_multiscale`). Every coupling is

    .. math::

        z_{1-m} = x_{1-m} \odot e^{s(x_m)} + t(x_m), \qquad
        \log\left|\det \frac{\partial z}{\partial x}\right| = \sum_i s_i(x_m),

    with a small :class:`~flowcourse.nets.ConvNet` computing :math:`s, t`. The flow maps
    ``(batch, *image_shape)`` logit-space images to noise of the same shape.
    Height and width must be divisible by :math:`2^{\text{num\_scales} - 1}`.
    Taught in the chapter *RealNVP*.

    Example:
        >>> flow = realnvp_image((1, 8, 8), num_scales=2, hidden_channels=8)
        >>> flow.sample(2).shape
        torch.Size([2, 1, 8, 8])
    """
    config = _config("realnvp_image", locals())
    channels, height, width = _check_image_shape(image_shape)
    with seeded(seed):
        transform = realnvp_multiscale(
            channels,
            (height, width),
            num_scales,
            hidden_channels,
            num_hidden_layers,
            log_scale_bound,
        )
    return _flow(transform, (channels, height, width), config)


def glow(
    image_shape: Sequence[int] = (1, 8, 8),
    num_scales: int = 2,
    steps_per_scale: int = 4,
    hidden_channels: int = 64,
    permutation: str = "conv1x1",
    coupling: str = "affine",
    seed: int = 0,
) -> Flow:
    r"""A small multi-scale Glow (Kingma & Dhariwal 2018) for the 8x8 digits.

    Each scale squeezes the image and applies ``steps_per_scale`` Glow steps,
    ActNorm :math:`\to` channel mixing :math:`\to` coupling,

    .. math::

        \log\left|\det \frac{\partial z}{\partial x}\right|
        = H W \sum_c s_c + H W \log|\det W| + \sum_i s_i(u),

    then factors out half of the channels (see :func:`~flowcourse.glow.glow_multiscale`).
    The parts are chosen by name, so that ``flow.config`` can be saved in a checkpoint:

    - ``permutation``: ``"conv1x1"`` (LU-parametrised invertible 1x1 convolution, the
      paper's choice), ``"conv1x1_full"`` (unconstrained :math:`W`), ``"shuffle"`` (a
      fixed random permutation) or ``"reverse"`` (RealNVP's reversal): the paper's
      ablation;
    - ``coupling``: ``"affine"`` or ``"additive"``.

    Step :math:`k` draws its 1x1 convolution or shuffle from ``seed + k``. Height and
    width must be divisible by :math:`2^{\text{num\_scales}}`. ActNorm initialises on the
    first batch it sees in training mode, so pass a batch of data through
    ``flow.log_prob`` before sampling. Taught in the chapter *Glow*.

    Example:
        >>> flow = glow((1, 8, 8), num_scales=2, steps_per_scale=2, hidden_channels=8)
        >>> flow.log_prob(torch.randn(16, 1, 8, 8)).shape  # initialises ActNorm
        torch.Size([16])
        >>> flow.sample(2).shape
        torch.Size([2, 1, 8, 8])
    """
    config = _config("glow", locals())
    channels, height, width = _check_image_shape(image_shape)
    make_permutation = _choose("permutation", permutation, GLOW_PERMUTATIONS)
    make_coupling = _choose("coupling", coupling, GLOW_COUPLINGS)
    step_seeds = itertools.count(seed)

    def seeded_permutation(num_channels: int) -> Transform:
        # A different rotation or shuffle for every step, all reproducible from ``seed``.
        return make_permutation(num_channels, next(step_seeds))

    with seeded(seed):
        transform = glow_multiscale(
            channels,
            (height, width),
            num_scales,
            steps_per_scale,
            hidden_channels,
            permutation=seeded_permutation,
            coupling=make_coupling,
        )
    return _flow(transform, (channels, height, width), config)


# ---------------------------------------------------------------------------- helpers


def _config(factory: str, arguments: dict[str, object]) -> dict[str, object]:
    # Tuples become lists, as they would after a JSON round trip, so a saved config and
    # the live one compare equal.
    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in arguments.items()}
    if kwargs.get("context_features") == 0:
        del kwargs["context_features"]  # an unconditional flow records what it always did
    return {"factory": factory, "kwargs": kwargs}


def _flow(
    transform: Transform,
    event_shape: int | tuple[int, ...],
    config: dict,
    context_features: int = 0,
) -> Flow:
    flow = Flow(transform, StandardNormal(event_shape), context_features=context_features)
    flow.config = config
    return flow


def _autoregressive_flow(
    config: dict,
    layer: Callable[..., Transform],
    features: int,
    num_layers: int,
    hidden_features: int,
    num_hidden_layers: int,
    seed: int,
    context_features: int,
) -> Flow:
    """``num_layers`` MADE-based layers, orders alternating, layer ``k`` seeded ``seed + k``."""
    check_positive_int(features, "features")
    check_positive_int(num_layers, "num_layers")
    with seeded(seed):
        layers = [
            layer(
                features,
                hidden_features,
                num_hidden_layers,
                order=_alternating_order(features, k),
                seed=seed + k,
                context_features=context_features,
            )
            for k in range(num_layers)
        ]
    return _flow(Compose(*layers), features, config, context_features)


def _coupling_flow(
    config: dict,
    coupling: Callable[[torch.Tensor], Transform],
    features: int,
    num_layers: int,
    seed: int,
    context_features: int,
) -> Flow:
    """``num_layers`` couplings ``coupling(half_mask(features))``, each keeping the first
    half, with a :class:`ReversePermutation` between consecutive ones (RealNVP, NSF)."""
    _check_coupling_features(features)
    check_positive_int(num_layers, "num_layers")
    with seeded(seed):
        layers = [coupling(half_mask(features)) for _ in range(num_layers)]
    between = [[ReversePermutation(features), layer] for layer in layers[1:]]
    transform = Compose(*layers[:1], *[t for pair in between for t in pair])
    return _flow(transform, features, config, context_features)


def _stack_flow(
    config: dict, layer: Callable[..., Transform], features: int, num_layers: int, seed: int
) -> Flow:
    """``num_layers`` layers ``layer(features, seed=seed + k)`` (planar, radial)."""
    check_positive_int(features, "features")
    check_positive_int(num_layers, "num_layers")
    check_int(seed, "seed")
    layers = [layer(features, seed=seed + k) for k in range(num_layers)]
    return _flow(Compose(*layers), features, config)


def _alternating_order(features: int, layer: int) -> torch.Tensor:
    """MADE order :math:`1..D` for even layers and :math:`D..1` for odd ones."""
    order = torch.arange(1, features + 1)
    return order if layer % 2 == 0 else order.flip(0)


def _choose(
    name: str, key: object, choices: dict[str, Callable[..., Transform]]
) -> Callable[..., Transform]:
    if not isinstance(key, str) or key not in choices:
        valid = ", ".join(repr(k) for k in choices)
        raise ValueError(f"expected {name} to be one of {valid}, got {key!r}")
    return choices[key]


def _check_coupling_features(features: object) -> None:
    check_int(features, "features", 2, "a coupling splits the features in two")


def _check_image_shape(image_shape: object) -> tuple[int, int, int]:
    if not isinstance(image_shape, Sequence) or isinstance(image_shape, str):
        kind = type(image_shape).__name__
        raise TypeError(f"expected image_shape to be (channels, height, width), got {kind}")
    if len(image_shape) != 3:
        raise ValueError(
            f"expected image_shape to be (channels, height, width), got {image_shape!r}"
        )
    channels, height, width = (
        check_positive_int(s, "every size in image_shape") for s in image_shape
    )
    return channels, height, width


# ------------------------------------------------------------- neural spline flows


def nsf_coupling(
    features: int,
    num_layers: int = 5,
    hidden_features: int = 64,
    num_hidden_layers: int = 2,
    num_bins: int = 8,
    bound: float = 3.0,
    seed: int = 0,
    context_features: int = 0,
) -> Flow:
    r"""A coupling neural spline flow (Durkan et al. 2019): RealNVP with splines.

    The layout of :func:`realnvp` (each layer keeps the first half of the features, a
    :class:`~flowcourse.permutations.ReversePermutation` between layers), with each
    affine map replaced by a monotone rational-quadratic spline of ``num_bins`` bins on
    :math:`[-B, B]` (:class:`~flowcourse.splines.RationalQuadraticCoupling`),

    .. math::

        z_i = g_i(x_i;\, x_m), \qquad
        \log\left|\det \frac{\partial z}{\partial x}\right| = \sum_{i \notin m} \log g_i'(x_i),

    the identity outside :math:`[-B, B]` (``bound``). Conditioners are
    :class:`~flowcourse.nets.CouplingMLP` s with ``num_hidden_layers`` hidden layers of
    ``hidden_features`` units that read the kept half (and a context of
    ``context_features`` values, if any) and return :math:`3K - 1` numbers per
    transformed feature. Taught in the chapter *Neural spline flows*.

    Example:
        >>> flow = nsf_coupling(features=2, num_layers=4, hidden_features=16, num_bins=6)
        >>> flow.log_prob(torch.zeros(3, 2)).shape
        torch.Size([3])
    """
    config = _config("nsf_coupling", locals())

    def coupling(mask: torch.Tensor) -> Transform:
        return RationalQuadraticCoupling.for_vectors(
            mask, hidden_features, num_hidden_layers, num_bins, bound, context_features
        )

    return _coupling_flow(config, coupling, features, num_layers, seed, context_features)


def nsf_autoregressive(
    features: int,
    num_layers: int = 5,
    hidden_features: int = 64,
    num_hidden_layers: int = 2,
    num_bins: int = 8,
    bound: float = 3.0,
    seed: int = 0,
    context_features: int = 0,
) -> Flow:
    r"""An autoregressive neural spline flow (Durkan et al. 2019): MAF with splines.

    The layout of :func:`maf` (MADE orders alternating between :math:`1, \dots, D` and
    :math:`D, \dots, 1`), with each affine conditional map replaced by a monotone
    rational-quadratic spline of ``num_bins`` bins on :math:`[-B, B]`
    (:class:`~flowcourse.splines.MaskedRationalQuadraticAutoregressive`),

    .. math::

        z_i = g_i(x_i;\, x_{<i}), \qquad
        \log\left|\det \frac{\partial z}{\partial x}\right| = \sum_i \log g_i'(x_i).

    Scoring data is one MADE pass per layer; sampling is :math:`D` passes, each inverting
    the splines in closed form. Layer :math:`k` seeds its MADE with ``seed + k``; with
    ``context_features`` the MADEs also read a context. Taught in the chapter *Neural
    spline flows*.

    Example:
        >>> flow = nsf_autoregressive(features=3, num_layers=2, hidden_features=8, num_bins=4)
        >>> flow.sample(4).shape
        torch.Size([4, 3])
    """
    config = _config("nsf_autoregressive", locals())

    def layer(*args: object, **kwargs: object) -> Transform:
        return MaskedRationalQuadraticAutoregressive(
            *args, num_bins=num_bins, bound=bound, **kwargs
        )

    return _autoregressive_flow(
        config,
        layer,
        features,
        num_layers,
        hidden_features,
        num_hidden_layers,
        seed,
        context_features,
    )


# ------------------------------------------------------- continuous normalizing flows


def cnf(
    features: int,
    hidden_features: int = 64,
    num_hidden_layers: int = 3,
    num_steps: int = 32,
    method: str = "rk4",
    seed: int = 0,
) -> Flow:
    r"""A continuous normalizing flow (Chen et al. 2018) with an MLP velocity field.

    One :class:`~flowcourse.continuous.ContinuousFlow` over a
    :class:`~flowcourse.continuous.VelocityMLP` :math:`v(z, t)` with ``num_hidden_layers``
    hidden layers of ``hidden_features`` units; data at :math:`t = 0`, noise at
    :math:`t = 1`:

    .. math::

        \log p(x) = \log \mathcal{N}(z_1; 0, I)
        + \int_0^1 \operatorname{tr} \frac{\partial v}{\partial z}(z_t, t)\, dt,
        \qquad \frac{dz_t}{dt} = v(z_t, t),\ z_0 = x,

    solved with ``num_steps`` steps of ``method`` (``"euler"``, ``"midpoint"``,
    ``"rk4"``). Train it by flow matching
    (:func:`~flowcourse.continuous.fit_flow_matching`), with no ODE solve, or by maximum
    likelihood (slow: every step solves the ODE with the divergence). A fresh flow is the
    identity. Taught in the chapter *Continuous-time flows and flow matching*.

    Example:
        >>> flow = cnf(features=2, hidden_features=16, num_steps=4)
        >>> flow.log_prob(torch.zeros(3, 2)).shape
        torch.Size([3])
    """
    config = _config("cnf", locals())
    with seeded(seed):
        velocity = VelocityMLP(features, hidden_features, num_hidden_layers)
    return _flow(ContinuousFlow(velocity, num_steps=num_steps, method=method), features, config)
