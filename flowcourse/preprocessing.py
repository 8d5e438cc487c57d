r"""From integer pixels to a flow's input and back: dequantisation, the logit, bits/dim.

**The bookkeeping, once and completely.** An image holds :math:`D` integer levels
:math:`k \in \{0, \dots, L-1\}^D` (the digits: :math:`D = 64`, :math:`L = 17`). A flow
models densities, and a density on integers is meaningless (it can put infinite
density on each integer), so

1. *dequantise*: :math:`x = k + u` with :math:`u \sim U[0, 1)^D`, and scale,
   :math:`y = x / L \in [0, 1)^D` (:func:`dequantize`);
2. *logit*: :math:`s = \operatorname{logit}(\alpha + (1 - 2\alpha) y)` maps the box to
   :math:`\mathbb{R}^D`, where a Gaussian base fits (:class:`LogitTransform`);
3. the flow models :math:`s` and gives :math:`\log p_S(s)` in nats.

Each step changes the density by its log-determinant:

.. math::

    \log p_Y(y) &= \log p_S(s) + \sum_{i=1}^{D} \log\left|\frac{ds_i}{dy_i}\right|,
    \qquad \frac{ds_i}{dy_i} = \frac{1 - 2\alpha}{p_i (1 - p_i)},\;
    p_i = \alpha + (1 - 2\alpha) y_i, \\
    \log p_X(x) &= \log p_Y(y) - D \log L \qquad (y = x / L).

The model of the *discrete* data is :math:`P(k) = \int_{[0,1)^D} p_X(k + u)\, du`, and
by Jensen's inequality :math:`\log P(k) \ge \mathbb{E}_u[\log p_X(k + u)]`. Hence the
number reported everywhere, in **bits per dimension**,

.. math::

    \text{bits/dim} = \frac{-\log_2 P(k)}{D}
    \;\le\; -\frac{\mathbb{E}_u\big[\log p_Y(y)\big] - D \log L}{D \ln 2},

computed by :func:`bits_per_dim`: an upper bound that a model of the discrete data can
only beat. Sanity check: the uniform density :math:`p_Y = 1` on the box gives exactly
:math:`\log_2 L` bits/dim, the cost of coding each level with no model at all (4.09 bits
for 17 levels); forgetting the :math:`-D \log L` term instead reports the "nats" of the
continuous :math:`y`, which can be negative. With :math:`\alpha > 0` the flow also puts
some mass outside the box that no image uses, which only makes the bound looser, never
wrong.

Taught in the chapter *RealNVP*.

Example:
    >>> import torch
    >>> from flowcourse.preprocessing import bits_per_dim, dequantize
    >>> levels = torch.tensor([[0.0, 16.0]])
    >>> y = dequantize(levels, num_levels=17, generator=torch.Generator().manual_seed(0))
    >>> bool(((y * 17).floor() == levels).all())
    True
    >>> bits_per_dim(torch.zeros(1), num_dims=2, num_levels=17)  # uniform model: log2(17)
    tensor([4.0875])
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from flowcourse.core import Transform
from flowcourse.dequantisation import (
    UniformDequantizer,
    VariationalDequantizer,
    check_levels,
    check_num_levels,
)
from flowcourse.validation import check_positive_int, check_tensor

__all__ = [
    "dequantize",
    "quantize",
    "LogitTransform",
    "bits_per_dim",
    "bits_per_dim_from_logit",
    "Dequantize",
    "DequantizeLogit",
    "VariationalDequantizeLogit",
    "evaluate_bits_per_dim",
]


def _check_batched(x: object, name: str) -> Tensor:
    x = check_tensor(x, name)
    if x.dim() < 2:
        raise ValueError(f"expected {name} of shape (batch, ...), got {tuple(x.shape)}")
    return x


def dequantize(levels: Tensor, num_levels: int, generator: torch.Generator | None = None) -> Tensor:
    r"""Uniform dequantisation: :math:`y = (k + u) / L` with :math:`u \sim U[0, 1)`.

    ``levels`` holds integer levels :math:`k \in \{0, \dots, L-1\}` (any shape, as floats
    or integers); the result has the same shape, a floating dtype (float32 for integer
    input) and values in :math:`[0, 1]` (in exact arithmetic :math:`y < 1`; float32
    rounding can land on 1 when :math:`k = L - 1`, which is why :class:`LogitTransform`
    uses :math:`\alpha > 0`). Fresh noise every call: draw it once per batch, every epoch,
    so the flow never sees the same :math:`y` twice and cannot collapse onto the grid.
    ``generator`` makes the noise reproducible (it must live on ``levels``' device).

    Example:
        >>> y = dequantize(torch.tensor([3.0]), num_levels=4)
        >>> bool(0.75 <= y <= 1.0)
        True
    """
    levels = check_levels(levels, num_levels)
    noise = torch.rand(levels.shape, generator=generator, dtype=levels.dtype, device=levels.device)
    return (levels + noise) / num_levels


def quantize(y: Tensor, num_levels: int) -> Tensor:
    r"""The inverse of :func:`dequantize`: :math:`k = \min(\max(\lfloor L y \rfloor, 0), L - 1)`.

    Turns a flow's samples back into levels (as floats). Values outside :math:`[0, 1]`,
    which a flow trained with :math:`\alpha > 0` produces, are clipped to the end levels.

    Example:
        >>> quantize(torch.tensor([-0.1, 0.3, 0.99, 1.2]), num_levels=4)
        tensor([0., 1., 3., 3.])
    """
    num_levels = check_num_levels(num_levels)
    y = check_tensor(y, "y")
    return torch.floor(y * num_levels).clamp(0, num_levels - 1)


class LogitTransform(Transform):
    r"""The logit with a margin: :math:`s = \operatorname{logit}(\alpha + (1 - 2\alpha) y)`.

    Maps dequantised data :math:`y \in [0, 1]` (any shape ``(batch, ...)``) to
    :math:`\mathbb{R}`, elementwise. The margin :math:`\alpha` keeps :math:`s` finite at
    :math:`y = 0` and :math:`y = 1` and bounds the slope. Summed over the non-batch axes,

    .. math::

        \log\left|\det \frac{\partial s}{\partial y}\right| = \sum_i \Big[\log(1 - 2\alpha)
        - \log p_i - \log(1 - p_i)\Big], \qquad p_i = \alpha + (1 - 2\alpha) y_i.

    ``inverse`` is :math:`y = (\sigma(s) - \alpha) / (1 - 2\alpha)`, with log-determinant
    :math:`\sum_i [\log \sigma(s_i) + \log \sigma(-s_i) - \log(1 - 2\alpha)]`; it accepts
    any real :math:`s`, so a flow's samples may land slightly outside :math:`[0, 1]`
    (:func:`quantize` clips them). ``forward`` raises ``ValueError`` for :math:`y` outside
    :math:`[0, 1]` (outside :math:`(0, 1)` when :math:`\alpha = 0`). From Dinh et al. 2017
    (RealNVP), who use :math:`\alpha = 0.05`; taught in the chapter *RealNVP*.

    :math:`\alpha` is a float64 buffer, not a plain attribute: ``state_dict``,
    :func:`flowcourse.io.save` and :func:`flowcourse.io.load` carry it, so a loaded
    transform uses the margin it was trained with (``.to(dtype)`` converts it like any
    buffer).

    Example:
        >>> logit = LogitTransform(alpha=0.05)
        >>> s, log_abs_det = logit(torch.tensor([[0.5, 0.5]]))
        >>> s, log_abs_det  # slope 0.9 / 0.25 = 3.6 per value: 2 log(3.6)
        (tensor([[0., 0.]]), tensor([2.5619]))
    """

    def __init__(self, alpha: float = 0.05) -> None:
        super().__init__()
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha < 0.5:
            raise ValueError(f"expected alpha in [0, 0.5), got {alpha!r}")
        # float64 whatever the default dtype: float64 data sees alpha to every digit.
        self.register_buffer("alpha", torch.tensor(float(alpha), dtype=torch.float64))

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        y = _check_batched(y, "y")
        alpha = float(self.alpha)
        if y.numel():
            low, high = float(y.detach().min()), float(y.detach().max())
            outside = low <= 0 or high >= 1 if alpha == 0 else low < 0 or high > 1
            if outside:
                interval = "(0, 1)" if alpha == 0 else "[0, 1]"
                raise ValueError(
                    f"expected y in {interval} (dequantised data, see dequantize), "
                    f"got values in [{low:g}, {high:g}]"
                )
        p = alpha + (1 - 2 * alpha) * y
        s = torch.log(p) - torch.log1p(-p)
        log_slope = math.log1p(-2 * alpha) - torch.log(p) - torch.log1p(-p)
        return s, log_slope.reshape(len(y), -1).sum(dim=1)

    def inverse(self, s: Tensor) -> tuple[Tensor, Tensor]:
        s = _check_batched(s, "s")
        alpha = float(self.alpha)
        y = (torch.sigmoid(s) - alpha) / (1 - 2 * alpha)
        # log sigma(s) + log sigma(-s) = -softplus(-s) - softplus(s), stable for large |s|.
        log_slope = -F.softplus(-s) - F.softplus(s) - math.log1p(-2 * alpha)
        return y, log_slope.reshape(len(s), -1).sum(dim=1)

    def extra_repr(self) -> str:
        return f"alpha={float(self.alpha)}"


def bits_per_dim(log_prob_y_nats: Tensor | float, num_dims: int, num_levels: int) -> Tensor | float:
    r"""Bits per dimension of discrete data from the density of dequantised :math:`y = (k+u)/L`.

    .. math::

        \text{bits/dim} = -\frac{\log p_Y(y) - D \log L}{D \ln 2}

    ``log_prob_y_nats`` is :math:`\log p_Y(y)` in nats (a tensor, e.g. one value per image,
    or a float); ``num_dims`` is :math:`D` (values per image, 64 for the digits);
    ``num_levels`` is :math:`L`. Averaged over the dequantisation noise this is an upper
    bound on the bits/dim of the discrete model (see the module docstring). For a flow
    that lives in logit space use :func:`bits_per_dim_from_logit`.

    Example:
        >>> round(bits_per_dim(0.0, num_dims=64, num_levels=17), 4)  # uniform model
        4.0875
    """
    num_levels = check_num_levels(num_levels)
    check_positive_int(num_dims, "num_dims")
    return -(log_prob_y_nats - num_dims * math.log(num_levels)) / (num_dims * math.log(2))


def bits_per_dim_from_logit(
    log_prob_s_nats: Tensor | float,
    logit_log_abs_det: Tensor | float,
    num_dims: int,
    num_levels: int,
) -> Tensor | float:
    r"""Bits per dimension when the flow models :math:`s = \operatorname{logit}(\dots y)`.

    Adds the logit's log-determinant to get back to :math:`y`,
    :math:`\log p_Y(y) = \log p_S(s) + \log|\det \partial s / \partial y|`, then applies
    :func:`bits_per_dim`. ``log_prob_s_nats`` is the flow's ``log_prob(s)`` and
    ``logit_log_abs_det`` the second output of ``LogitTransform()(y)``.

    Example:
        >>> logit = LogitTransform()
        >>> s, log_abs_det = logit(torch.full((1, 64), 0.5))
        >>> log_prob_s = torch.full((1,), -64 * 0.5 * math.log(2 * math.pi))  # N(0, I) at 0
        >>> bits_per_dim_from_logit(log_prob_s, log_abs_det, num_dims=64, num_levels=17)
        tensor([3.5652])
    """
    return bits_per_dim(log_prob_s_nats + logit_log_abs_det, num_dims, num_levels)


class Dequantize:
    r"""A ``preprocess`` for :func:`flowcourse.training.fit`: levels to :math:`y = (k+u)/L`.

    ``Dequantize(L)(levels, generator)`` returns ``(y, zeros)``: the flow models
    :math:`y` directly, so the loss of ``fit`` is :math:`-\log p_Y(y)` and ``fit(...,
    num_levels=L)`` reports bits/dim. Taught in the chapter *RealNVP*.

    Example:
        >>> y, log_abs_det = Dequantize(17)(torch.zeros(2, 1, 8, 8), torch.Generator())
        >>> y.shape, log_abs_det
        (torch.Size([2, 1, 8, 8]), tensor([0., 0.]))
    """

    def __init__(self, num_levels: int) -> None:
        self.num_levels = check_num_levels(num_levels)

    def __call__(
        self, levels: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        y = dequantize(levels, self.num_levels, generator)
        return y, y.new_zeros(len(y))

    def __repr__(self) -> str:
        return f"Dequantize(num_levels={self.num_levels})"


class DequantizeLogit:
    r"""A ``preprocess`` for :func:`flowcourse.training.fit`: levels to logit space.

    ``DequantizeLogit(L, alpha)(levels, generator)`` returns ``(s, log_abs_det)`` with
    :math:`y = (k+u)/L` (fresh :math:`u` every call), :math:`s` = ``LogitTransform(alpha)(y)``
    and ``log_abs_det`` :math:`= \log|\det \partial s/\partial y|`, so that
    ``flow.log_prob(s) + log_abs_det`` is :math:`\log p_Y(y)`: the quantity whose negative
    ``fit`` minimises and turns into bits/dim. ``to_levels(s)`` maps a flow's samples
    back to levels for display. Taught in the chapter *RealNVP*.

    Example:
        >>> preprocess = DequantizeLogit(num_levels=17)
        >>> levels = torch.randint(0, 17, (2, 1, 8, 8)).float()
        >>> s, log_abs_det = preprocess(levels, torch.Generator().manual_seed(0))
        >>> torch.equal(preprocess.to_levels(s), levels)
        True
    """

    def __init__(self, num_levels: int, alpha: float = 0.05) -> None:
        self.num_levels = check_num_levels(num_levels)
        self.logit = LogitTransform(alpha)

    def __call__(
        self, levels: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        return self.logit(dequantize(levels, self.num_levels, generator))

    def to_levels(self, s: Tensor) -> Tensor:
        """Map points of logit space (a flow's samples) to integer levels, as floats."""
        y, _ = self.logit.inverse(s)
        return quantize(y, self.num_levels)

    def __repr__(self) -> str:
        return f"DequantizeLogit(num_levels={self.num_levels}, alpha={float(self.logit.alpha)})"


class VariationalDequantizeLogit(DequantizeLogit):
    r"""Like :class:`DequantizeLogit`, with the noise drawn from a dequantiser :math:`q(u \mid k)`.

    ``VariationalDequantizeLogit(dequantizer, alpha)(levels, generator)`` draws
    ``u, log_q = dequantizer.sample_and_log_prob(levels, generator)``, sets
    :math:`y = (k + u)/L` and returns ``(s, log_abs_det - log_q)``, with ``s`` and
    ``log_abs_det`` from :class:`LogitTransform`. Then ``flow.log_prob(s)`` plus the second
    output is :math:`\log p_Y(y) - \log q(u \mid k)`, and everything that turns
    :math:`\log p_Y(y)` into bits/dim (:func:`bits_per_dim`, :func:`evaluate_bits_per_dim`,
    ``fit(..., num_levels=L)``) now gives the variational bound of Ho et al. (2019),

    .. math::

        \text{bits/dim} \;\le\; -\frac{\mathbb{E}_{u \sim q}\big[\log p_Y(y) - \log q(u \mid k)\big]
        - D \log L}{D \ln 2}.

    With a :class:`~flowcourse.dequantisation.UniformDequantizer` it returns exactly what
    :class:`DequantizeLogit` returns (:math:`\log q = 0`, the same noise). To train a
    :class:`~flowcourse.dequantisation.VariationalDequantizer` with the flow, give
    :func:`flowcourse.training.fit` a
    :class:`~flowcourse.dequantisation.FlowWithDequantizer`. Taught in the chapter
    *RealNVP*.

    Example:
        >>> levels = torch.randint(0, 17, (2, 1, 8, 8)).float()
        >>> uniform = VariationalDequantizeLogit(UniformDequantizer(17))
        >>> s, log_abs_det = uniform(levels, torch.Generator().manual_seed(0))
        >>> s_old, log_abs_det_old = DequantizeLogit(17)(levels, torch.Generator().manual_seed(0))
        >>> torch.equal(s, s_old) and torch.equal(log_abs_det, log_abs_det_old)
        True
    """

    def __init__(
        self, dequantizer: UniformDequantizer | VariationalDequantizer, alpha: float = 0.05
    ) -> None:
        if not hasattr(dequantizer, "sample_and_log_prob") or not hasattr(
            dequantizer, "num_levels"
        ):
            raise TypeError(
                "expected dequantizer to be a UniformDequantizer or VariationalDequantizer, "
                f"got {type(dequantizer).__name__}"
            )
        super().__init__(dequantizer.num_levels, alpha)
        self.dequantizer = dequantizer

    def __call__(
        self, levels: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        u, log_q = self.dequantizer.sample_and_log_prob(levels, generator)
        s, log_abs_det = self.logit((levels.to(u.dtype) + u) / self.num_levels)
        return s, log_abs_det - log_q

    def __repr__(self) -> str:
        return (
            f"VariationalDequantizeLogit({type(self.dequantizer).__name__}, "
            f"alpha={float(self.logit.alpha)})"
        )


def evaluate_bits_per_dim(
    flow: Callable[[Tensor], Tensor] | object,
    levels: Tensor,
    preprocess: Dequantize | DequantizeLogit | VariationalDequantizeLogit,
    draws: int = 4,
    seed: int = 123,
) -> float:
    r"""Test bits/dim of integer ``levels``, averaged over images and dequantisation draws.

    For each of ``draws`` seeded noise draws: ``(inputs, log_abs_det) = preprocess(levels)``,
    :math:`\log p_Y(y)`, which is ``flow.log_prob(inputs) + log_abs_det``, then
    :func:`bits_per_dim`. The mean is an upper bound on the discrete bits/dim (Jensen);
    a fixed ``seed`` makes numbers from different models comparable. ``flow`` is a flow or
    any function from inputs to log-densities in nats. This is the protocol of every
    digits number in the book (chapters *RealNVP*, *Glow*, *MAF*). With a
    :class:`VariationalDequantizeLogit` the inputs come with :math:`-\log q(u \mid k)`
    and the number is the variational bound: one function for both bounds.

    Example:
        >>> uniform = lambda y: torch.zeros(len(y))  # the uniform density on (0, 1)^D
        >>> levels = torch.randint(0, 17, (5, 1, 8, 8)).float()
        >>> round(evaluate_bits_per_dim(uniform, levels, Dequantize(17)), 4)  # log2(17)
        4.0875
    """
    log_prob = getattr(flow, "log_prob", flow)
    levels = check_tensor(levels, "levels")
    num_dims = math.prod(levels.shape[1:])
    generator = torch.Generator().manual_seed(seed)
    bits = []
    with torch.no_grad():
        for _ in range(draws):
            inputs, log_abs_det = preprocess(levels, generator)
            log_prob_y = log_prob(inputs) + log_abs_det
            bits.append(bits_per_dim(log_prob_y, num_dims, preprocess.num_levels))
    return float(torch.cat(bits).mean())
