r"""The planar flow of Rezende & Mohamed (2015).

Taught in the chapter *Variational inference*.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from flowcourse.core import Transform
from flowcourse.validation import (
    check_features,
    check_int,
    check_matches_module,
    check_positive_int,
)

__all__ = ["Planar"]


class Planar(Transform):
    r"""A planar flow layer (Rezende & Mohamed, 2015): a bump along one direction.

    The sampling direction (noise to data, ``inverse``) is the paper's map

    .. math::

        x = f(z) = z + \hat u \tanh(w^\top z + b), \qquad
        \log\left|\det \frac{\partial x}{\partial z}\right| = \log\left|1 + \hat u^\top
        \psi(z)\right|, \quad \psi(z) = \left(1 - \tanh^2(w^\top z + b)\right) w.

    It is invertible exactly when :math:`w^\top \hat u \ge -1`, which the paper's
    reparametrisation of the free vector :math:`u` guarantees:

    .. math::

        \hat u = u + \left(m(w^\top u) - w^\top u\right) \frac{w}{\lVert w\rVert^2}, \qquad
        m(a) = -1 + \operatorname{softplus}(a), \quad\text{so}\quad
        w^\top \hat u = m(w^\top u) > -1.

    The density direction (``forward``, data to noise) has no closed form; it is
    **iterative**. Only the component :math:`\alpha = w^\top z` is unknown, and it solves
    the scalar equation :math:`w^\top x = \alpha + w^\top \hat u \tanh(\alpha + b)`, whose
    right side is strictly increasing in :math:`\alpha`, so bisection on the bracket
    :math:`w^\top x \pm |w^\top \hat u|` finds it to machine precision. Then
    :math:`z = x - \hat u \tanh(\alpha + b)`. A final Newton step, taken with gradients on,
    leaves the value unchanged and gives the exact implicit-function gradient, so
    ``log_prob`` can be trained and differentiated. ``seed`` fixes the initial
    :math:`u, w` (drawn from :math:`\mathcal N(0, 1/D)`); :math:`b` starts at 0.
    Taught in the chapter *Variational inference*.

    Example:
        >>> layer = Planar(2)
        >>> x, log_abs_det = layer.inverse(torch.randn(5, 2))
        >>> z, minus_log_abs_det = layer(x)
        >>> torch.allclose(log_abs_det, -minus_log_abs_det, atol=1e-5)
        True
    """

    def __init__(self, features: int, seed: int = 0) -> None:
        super().__init__()
        self.features = check_positive_int(features, "features")
        generator = torch.Generator().manual_seed(check_int(seed, "seed"))
        scale = features**-0.5
        self.u = nn.Parameter(scale * torch.randn(features, generator=generator))
        self.w = nn.Parameter(scale * torch.randn(features, generator=generator))
        self.b = nn.Parameter(torch.zeros(()))

    def check_input(self, x: object, inverse: bool = False, context: Tensor | None = None) -> None:
        name = "z" if inverse else "x"
        check_matches_module(check_features(x, self.features, name), self, name)

    def w_dot_u_hat(self) -> Tensor:
        r""":math:`w^\top \hat u = m(w^\top u) = -1 + \operatorname{softplus}(w^\top u) \ge -1`.

        Computed from the formula rather than as a dot product, whose rounding could land a
        hair below -1 when :math:`w^\top u \ll 0`; softplus is never negative.
        """
        return F.softplus(self.w @ self.u) - 1

    def u_hat(self) -> Tensor:
        r"""The constrained vector :math:`\hat u`, with :math:`w^\top \hat u \ge -1`."""
        w_dot_u = self.w @ self.u
        # clamp_min only matters if training drives w to exactly zero (then u_hat = u).
        squared_norm = (self.w @ self.w).clamp_min(torch.finfo(self.w.dtype).tiny)
        return self.u + (self.w_dot_u_hat() - w_dot_u) * self.w / squared_norm

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        activation = torch.tanh(z @ self.w + self.b)
        x = z + activation.unsqueeze(1) * self.u_hat()
        # 1 + u_hat^T psi(z) = 1 + (1 - tanh^2) w^T u_hat >= 0 because w^T u_hat >= -1.
        log_abs_det = torch.log1p((1 - activation**2) * self.w_dot_u_hat())
        return x, log_abs_det

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        u_hat, w_dot_u_hat = self.u_hat(), self.w_dot_u_hat()
        target = x @ self.w
        alpha = self._solve_for_alpha(target, w_dot_u_hat)
        activation = torch.tanh(alpha + self.b)
        z = x - activation.unsqueeze(1) * u_hat
        return z, -torch.log1p((1 - activation**2) * w_dot_u_hat)

    def _solve_for_alpha(self, target: Tensor, w_dot_u_hat: Tensor) -> Tensor:
        r"""Solve :math:`\alpha + c \tanh(\alpha + b) = t` where :math:`c = w^\top\hat u`."""

        def residual(alpha: Tensor) -> Tensor:
            return alpha + w_dot_u_hat * torch.tanh(alpha + self.b) - target

        with torch.no_grad():
            # |c tanh| <= |c|, so the root lies within |c| of the target (plus a margin).
            radius = w_dot_u_hat.abs() + 1
            low, high = target - radius, target + radius
            # Halve until the bracket (width 2 * radius) is below the float resolution;
            # about 55 halvings in float64, 26 in float32.
            resolution = torch.finfo(target.dtype).eps
            steps = math.ceil(math.log2(2 * float(radius) / resolution)) + 1
            for _ in range(steps):
                middle = (low + high) / 2
                above = residual(middle) > 0
                low = torch.where(above, low, middle)
                high = torch.where(above, middle, high)
            root = (low + high) / 2
        # One Newton step with gradients on: the value stays the root, and the gradient
        # becomes d(alpha) = -d(residual) / residual'(alpha), the implicit-function rule.
        slope = 1 + w_dot_u_hat * (1 - torch.tanh(root + self.b) ** 2)
        return root - residual(root) / slope
