r"""The four 2-D energies of Rezende & Mohamed (2015), Table 1: targets for variational inference.

Each function returns the energy :math:`U(z)` of points ``z`` of shape ``(batch, 2)``;
the target density is :math:`p(z) = e^{-U(z)} / Z`, known only up to :math:`Z`. With

.. math::

    w_1(z) = \sin\!\left(\frac{2\pi z_1}{4}\right), \quad
    w_2(z) = 3 e^{-\frac12 \left(\frac{z_1 - 1}{0.6}\right)^2}, \quad
    w_3(z) = 3\,\sigma\!\left(\frac{z_1 - 1}{0.3}\right),

.. math::

    U_1(z) &= \tfrac12 \left(\frac{\|z\| - 2}{0.4}\right)^2
        - \ln\!\left(e^{-\frac12\left(\frac{z_1 - 2}{0.6}\right)^2}
        + e^{-\frac12\left(\frac{z_1 + 2}{0.6}\right)^2}\right) \\
    U_2(z) &= \tfrac12 \left(\frac{z_2 - w_1(z)}{0.4}\right)^2 \\
    U_3(z) &= -\ln\!\left(e^{-\frac12\left(\frac{z_2 - w_1(z)}{0.35}\right)^2}
        + e^{-\frac12\left(\frac{z_2 - w_1(z) + w_2(z)}{0.35}\right)^2}\right) \\
    U_4(z) &= -\ln\!\left(e^{-\frac12\left(\frac{z_2 - w_1(z)}{0.4}\right)^2}
        + e^{-\frac12\left(\frac{z_2 - w_1(z) + w_3(z)}{0.35}\right)^2}\right)

**Only** :math:`U_1` **is normalisable on the whole plane.** :math:`U_2, U_3, U_4` do not
grow along :math:`z_1` (they are periodic bands), so :math:`\int e^{-U} = \infty` on
:math:`\mathbb{R}^2`. Like the paper's figures, the book restricts every target to the box
``ENERGY_BOUNDS`` :math:`= [-4, 4]^2`; :func:`log_normalizer` computes :math:`\ln Z` on it,
and a reverse-KL fit reports

.. math::

    \mathrm{KL}(q \,\|\, p) = \mathbb{E}_q[\ln q(z) + U(z)] + \ln Z \quad\text{(nats)},

which is exact when the flow :math:`q` puts (nearly) all its mass inside the box.
Taught in the chapter *Variational inference*.

Example:
    >>> from flowcourse.data import U1, log_normalizer
    >>> U1(torch.tensor([[2.0, 0.0], [0.0, 0.0]]))  # on the ring, then at its centre
    tensor([-2.2336e-10,  1.7362e+01])
    >>> round(log_normalizer(U1), 3)
    1.878
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from flowcourse.validation import check_features, check_int

__all__ = ["U1", "U2", "U3", "U4", "ENERGIES", "ENERGY_BOUNDS", "boxed", "log_normalizer"]

#: The square ``[low, high]^2`` on which the energies are drawn and boxed.
ENERGY_BOUNDS = (-4.0, 4.0)


def _w1(z: Tensor) -> Tensor:
    return torch.sin(2 * math.pi * z[:, 0] / 4)


def _w2(z: Tensor) -> Tensor:
    return 3 * torch.exp(-0.5 * ((z[:, 0] - 1) / 0.6) ** 2)


def _w3(z: Tensor) -> Tensor:
    return 3 * torch.sigmoid((z[:, 0] - 1) / 0.3)


def _negative_log_sum_exp(a: Tensor, b: Tensor) -> Tensor:
    r""":math:`-\ln(e^a + e^b)`, computed without overflow or underflow."""
    return -torch.logaddexp(a, b)


def U1(z: Tensor) -> Tensor:
    r"""Ring with two lobes: :math:`U_1` of Rezende & Mohamed (2015), shape ``(batch,)``.

    Example:
        >>> U1(torch.tensor([[0.0, 2.0]]))  # on the ring, between the lobes
        tensor([4.8624])
    """
    z = check_features(z, 2, "z")
    ring = 0.5 * ((z.norm(dim=1) - 2) / 0.4) ** 2
    lobes = _negative_log_sum_exp(
        -0.5 * ((z[:, 0] - 2) / 0.6) ** 2, -0.5 * ((z[:, 0] + 2) / 0.6) ** 2
    )
    return ring + lobes


def U2(z: Tensor) -> Tensor:
    r"""A sine wave: :math:`U_2` of Rezende & Mohamed (2015), shape ``(batch,)``.

    Example:
        >>> U2(torch.tensor([[1.0, 1.0]]))
        tensor([0.])
    """
    z = check_features(z, 2, "z")
    return 0.5 * ((z[:, 1] - _w1(z)) / 0.4) ** 2


def U3(z: Tensor) -> Tensor:
    r"""A sine wave that splits in two: :math:`U_3` of Rezende & Mohamed (2015), shape ``(batch,)``.

    Example:
        >>> U3(torch.zeros(1, 2)).shape
        torch.Size([1])
    """
    z = check_features(z, 2, "z")
    w1 = _w1(z)
    return _negative_log_sum_exp(
        -0.5 * ((z[:, 1] - w1) / 0.35) ** 2, -0.5 * ((z[:, 1] - w1 + _w2(z)) / 0.35) ** 2
    )


def U4(z: Tensor) -> Tensor:
    r"""A sine wave with a step: :math:`U_4` of Rezende & Mohamed (2015), shape ``(batch,)``.

    Example:
        >>> U4(torch.zeros(1, 2)).shape
        torch.Size([1])
    """
    z = check_features(z, 2, "z")
    w1 = _w1(z)
    return _negative_log_sum_exp(
        -0.5 * ((z[:, 1] - w1) / 0.4) ** 2, -0.5 * ((z[:, 1] - w1 + _w3(z)) / 0.35) ** 2
    )


#: The four test energies of Rezende & Mohamed (2015), by name.
ENERGIES: dict[str, Callable[[Tensor], Tensor]] = {"U1": U1, "U2": U2, "U3": U3, "U4": U4}


def boxed(
    energy: Callable[[Tensor], Tensor],
    bounds: tuple[float, float] = ENERGY_BOUNDS,
    wall_width: float = 0.2,
) -> Callable[[Tensor], Tensor]:
    r"""Restrict an energy to the box ``bounds``² by a steep quadratic wall.

    .. math::

        U^{\text{box}}(z) = U(z) + \sum_i \tfrac12
        \left(\frac{\max(a - z_i,\, 0) + \max(z_i - b,\, 0)}{w}\right)^2

    for the box :math:`[a, b]^2` and wall width :math:`w`.
    :math:`U_2, U_3, U_4` do not grow along :math:`z_1`, so :math:`e^{-U}` has infinite
    mass on the plane and a reverse-KL fit can spread without limit; the wall makes them
    normalisable while leaving them unchanged inside the box (a hard box would make
    :math:`\log q + U` infinite as soon as one sample left it). Taught in the chapter
    *Variational inference*.

    Example:
        >>> U = boxed(U2)
        >>> bool(U(torch.tensor([[0.5, 0.5]])) == U2(torch.tensor([[0.5, 0.5]])))
        True
    """
    if not wall_width > 0:
        raise ValueError(f"expected a positive wall_width, got {wall_width!r}")
    low, high = bounds

    def energy_in_box(z: Tensor) -> Tensor:
        outside = (torch.relu(low - z) + torch.relu(z - high)) / wall_width
        return energy(z) + 0.5 * (outside**2).sum(dim=1)

    return energy_in_box


def log_normalizer(
    energy: Callable[[Tensor], Tensor],
    bounds: tuple[float, float] = ENERGY_BOUNDS,
    resolution: int = 500,
) -> float:
    r""":math:`\ln Z = \ln \int_{\text{box}} e^{-U(z)}\, dz` in nats, by a midpoint sum on a grid.

    The box is ``bounds`` x ``bounds``; the sum runs in float64 on ``resolution``²
    points and in log space (``logsumexp``), so deep energies do not underflow. The
    default grid is accurate to about 1e-5 nats for the four energies of this module.

    Example:
        >>> round(log_normalizer(U2), 4)  # ln(8 * 0.4 * sqrt(2 pi)): a Gaussian band, 8 wide
        2.0821
    """
    check_int(resolution, "resolution", 2)
    low, high = float(bounds[0]), float(bounds[1])
    if not high > low:
        raise ValueError(f"expected bounds (low, high) with low < high, got {bounds!r}")
    step = (high - low) / resolution
    axis = low + step * (0.5 + torch.arange(resolution, dtype=torch.float64))
    xx, yy = torch.meshgrid(axis, axis, indexing="xy")
    grid = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    with torch.no_grad():
        log_values = torch.cat([-energy(chunk) for chunk in grid.split(65536)])
    return float(torch.logsumexp(log_values, dim=0)) + 2 * math.log(step)
