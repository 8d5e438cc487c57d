r"""The radial flow of Rezende & Mohamed (2015).

Taught in the chapter *Variational inference*.
"""

from __future__ import annotations

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

__all__ = ["Radial"]


class Radial(Transform):
    r"""A radial flow layer (Rezende & Mohamed, 2015): contract or expand around a point.

    The sampling direction (noise to data, ``inverse``) is the paper's map, with
    :math:`r = \lVert z - z_0\rVert` and :math:`h(\alpha, r) = 1 / (\alpha + r)`:

    .. math::

        x = f(z) = z + \beta h(\alpha, r) (z - z_0), \qquad
        \log\left|\det \frac{\partial x}{\partial z}\right| = (D - 1) \log(1 + \beta h)
        + \log(1 + \beta h + \beta h'(r)\, r),

    where the last term simplifies to :math:`\log(1 + \alpha\beta h^2)`. It is invertible
    when :math:`\beta \ge -\alpha`, which the parametrisation :math:`\alpha =
    \operatorname{softplus}(\tilde\alpha) > 0`, :math:`\beta = -\alpha +
    \operatorname{softplus}(\tilde\beta)` guarantees.

    The density direction (``forward``, data to noise) solves the scalar equation for
    :math:`r`: with :math:`\rho = \lVert x - z_0\rVert`, :math:`\rho = r (1 + \beta/(\alpha + r))`
    is the quadratic :math:`r^2 + (\alpha + \beta - \rho) r - \alpha\rho = 0`, whose one
    non-negative root is computed in closed form (no iteration), and then
    :math:`z = z_0 + (x - z_0) / (1 + \beta h(\alpha, r))`. ``seed`` fixes the initial
    :math:`z_0, \tilde\alpha, \tilde\beta` (standard normal draws).
    Taught in the chapter *Variational inference*.

    Example:
        >>> layer = Radial(2)
        >>> x, log_abs_det = layer.inverse(torch.randn(5, 2))
        >>> z, minus_log_abs_det = layer(x)
        >>> torch.allclose(log_abs_det, -minus_log_abs_det, atol=1e-5)
        True
    """

    def __init__(self, features: int, seed: int = 0) -> None:
        super().__init__()
        self.features = check_positive_int(features, "features")
        generator = torch.Generator().manual_seed(check_int(seed, "seed"))
        self.center = nn.Parameter(torch.randn(features, generator=generator))
        self.raw_alpha = nn.Parameter(torch.randn((), generator=generator))
        self.raw_beta = nn.Parameter(torch.randn((), generator=generator))

    def check_input(self, x: object, inverse: bool = False, context: Tensor | None = None) -> None:
        name = "z" if inverse else "x"
        check_matches_module(check_features(x, self.features, name), self, name)

    def alpha_and_beta(self) -> tuple[Tensor, Tensor]:
        r"""The constrained :math:`\alpha > 0` and :math:`\beta > -\alpha`."""
        alpha = F.softplus(self.raw_alpha)
        return alpha, -alpha + F.softplus(self.raw_beta)

    def _log_abs_det(self, r: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
        h = 1 / (alpha + r)
        return (self.features - 1) * torch.log1p(beta * h) + torch.log1p(alpha * beta * h**2)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        alpha, beta = self.alpha_and_beta()
        offset = z - self.center
        r = offset.norm(dim=1)
        x = z + (beta / (alpha + r)).unsqueeze(1) * offset
        return x, self._log_abs_det(r, alpha, beta)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        alpha, beta = self.alpha_and_beta()
        offset = x - self.center
        rho = offset.norm(dim=1)
        r = _positive_root(alpha + beta - rho, -alpha * rho)
        z = self.center + offset / (1 + beta / (alpha + r)).unsqueeze(1)
        return z, -self._log_abs_det(r, alpha, beta)


def _positive_root(linear: Tensor, constant: Tensor) -> Tensor:
    r"""The root :math:`r \ge 0` of :math:`r^2 + p r + q` (:math:`q \le 0`), without cancellation.

    The textbook formula :math:`(-p + \sqrt{p^2 - 4q})/2` subtracts nearly equal numbers
    when :math:`p > 0`; there the equal root :math:`2q / (-p - \sqrt{p^2 - 4q})` is exact.
    """
    discriminant = torch.sqrt(linear**2 - 4 * constant)
    sign = torch.where(linear >= 0, 1.0, -1.0).to(linear.dtype)
    half_sum = -0.5 * (linear + sign * discriminant)  # never zero: see the class docstring
    return torch.where(linear >= 0, constant / half_sum, half_sum)
