r"""Invertible 1x1 convolutions: a learned rotation of the channels at every pixel."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowcourse.core import Transform
from flowcourse.validation import check_channels, check_int, check_positive_int

__all__ = ["random_rotation", "Invertible1x1Conv", "LUInvertible1x1Conv"]


def random_rotation(channels: int, seed: int = 0) -> Tensor:
    r"""A random rotation matrix: the :math:`Q` of the QR decomposition of a Gaussian matrix.

    Column signs are fixed so that :math:`\det Q = +1`; :math:`\log|\det Q| = 0`, so a fresh
    1x1 convolution changes no volume (Kingma & Dhariwal 2018, Glow, Sec. 3.2). The same
    ``seed`` gives the same matrix on every machine. Taught in the chapter *Glow*.

    Example:
        >>> q = random_rotation(3, seed=1)
        >>> torch.allclose(q @ q.T, torch.eye(3), atol=1e-6), round(float(torch.det(q)), 4)
        (True, 1.0)
    """
    channels = check_positive_int(channels, "channels")
    generator = torch.Generator().manual_seed(check_int(seed, "seed"))
    q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _mix_channels(x: Tensor, weight: Tensor) -> Tensor:
    """Apply ``weight`` to the channel vector of every pixel (or of every vector)."""
    if x.dim() == 2:
        return x @ weight.T
    return F.conv2d(x, weight.reshape(*weight.shape, 1, 1))


def _pixels(x: Tensor) -> int:
    return math.prod(x.shape[2:])  # H * W for images, 1 for vectors


class Invertible1x1Conv(Transform):
    r"""An invertible 1x1 convolution (Kingma & Dhariwal 2018, Glow, Sec. 3.2).

    The same matrix :math:`W \in \mathbb{R}^{C \times C}` multiplies the channel vector of
    every pixel, which generalises a fixed channel permutation to a learned one:

    .. math::

        z_{:, i, j} = W x_{:, i, j}, \qquad
        \log\left|\det \frac{\partial z}{\partial x}\right| = H W \log|\det W|.

    :math:`W` starts as a random rotation and is learned freely; ``slogdet`` costs
    :math:`O(C^3)` (see :class:`LUInvertible1x1Conv` for :math:`O(C)`). Vectors
    ``(batch, C)`` are multiplied directly (:math:`H W = 1`). Taught in the chapter *Glow*.

    Example:
        >>> import torch
        >>> layer = Invertible1x1Conv(4, seed=0)
        >>> x = torch.randn(2, 4, 8, 8)
        >>> z, log_abs_det = layer(x)
        >>> z.shape, log_abs_det.abs().max() < 1e-4  # a rotation keeps volume
        (torch.Size([2, 4, 8, 8]), tensor(True))
        >>> torch.allclose(layer.inverse(z)[0], x, atol=1e-5)
        True
    """

    def __init__(self, channels: int, seed: int = 0) -> None:
        super().__init__()
        self.channels = check_positive_int(channels, "channels")
        self.weight = nn.Parameter(random_rotation(channels, seed))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        log_abs_det = _pixels(x) * torch.linalg.slogdet(self.weight).logabsdet
        return _mix_channels(x, self.weight), log_abs_det.expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        log_abs_det = -_pixels(z) * torch.linalg.slogdet(self.weight).logabsdet
        return _mix_channels(z, torch.linalg.inv(self.weight)), log_abs_det.expand(z.shape[0])

    def check_input(self, x: object, inverse: bool = False, context: Tensor | None = None) -> None:
        check_channels(x, self.channels, self, name="z" if inverse else "x")

    def extra_repr(self) -> str:
        return str(self.channels)


class LUInvertible1x1Conv(Transform):
    r"""An invertible 1x1 convolution with an LU-factorised weight (Glow, Sec. 3.2).

    .. math::

        W = P L \left(U + \operatorname{diag}(s)\right), \qquad
        s = \operatorname{sign} \odot e^{\log|s|}, \qquad
        \log\left|\det \frac{\partial z}{\partial x}\right| = H W \sum_c \log|s_c|,

    with :math:`P` a fixed permutation, :math:`L` unit lower triangular, :math:`U` strictly
    upper triangular and the signs of :math:`s` fixed. Only :math:`L`, :math:`U` and
    :math:`\log|s|` are learned, and the log-determinant costs :math:`O(C)` instead of the
    :math:`O(C^3)` of ``slogdet``. At construction :math:`W` is the LU factorisation of a
    random rotation, so the layer starts exactly like :class:`Invertible1x1Conv`.
    :math:`P`, the signs and the triangular masks are buffers. Taught in the chapter *Glow*.

    Example:
        >>> import torch
        >>> layer = LUInvertible1x1Conv(4, seed=0)
        >>> torch.allclose(layer.weight, random_rotation(4, seed=0), atol=1e-6)
        True
        >>> x = torch.randn(2, 4, 8, 8)
        >>> torch.allclose(layer.inverse(layer(x)[0])[0], x, atol=1e-5)
        True
    """

    def __init__(self, channels: int, seed: int = 0) -> None:
        super().__init__()
        self.channels = check_positive_int(channels, "channels")
        permutation, lower, upper = torch.linalg.lu(random_rotation(channels, seed))
        s = upper.diagonal()
        ones = torch.ones(channels, channels)
        self.register_buffer("permutation", permutation)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("lower_mask", torch.tril(ones, diagonal=-1))
        self.register_buffer("upper_mask", torch.triu(ones, diagonal=1))
        self.register_buffer("identity", torch.eye(channels))
        # Entries outside the masks are never used (their gradient is zero).
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(upper)
        self.log_abs_s = nn.Parameter(s.abs().log())

    @property
    def lower_triangular(self) -> Tensor:
        """:math:`L`: unit lower triangular."""
        return self.lower * self.lower_mask + self.identity

    @property
    def upper_triangular(self) -> Tensor:
        r""":math:`U + \operatorname{diag}(s)`: upper triangular with the signed scales."""
        return self.upper * self.upper_mask + torch.diag(self.sign_s * self.log_abs_s.exp())

    @property
    def weight(self) -> Tensor:
        r"""The full matrix :math:`W = P L (U + \operatorname{diag}(s))`."""
        return self.permutation @ self.lower_triangular @ self.upper_triangular

    @property
    def inverse_weight(self) -> Tensor:
        r""":math:`W^{-1} = (U + \mathrm{diag}(s))^{-1} L^{-1} P^\top`, via triangular solves."""
        l_inv_pt = torch.linalg.solve_triangular(
            self.lower_triangular, self.permutation.T, upper=False, unitriangular=True
        )
        return torch.linalg.solve_triangular(self.upper_triangular, l_inv_pt, upper=True)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        log_abs_det = _pixels(x) * self.log_abs_s.sum()
        return _mix_channels(x, self.weight), log_abs_det.expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        log_abs_det = -_pixels(z) * self.log_abs_s.sum()
        return _mix_channels(z, self.inverse_weight), log_abs_det.expand(z.shape[0])

    def check_input(self, x: object, inverse: bool = False, context: Tensor | None = None) -> None:
        check_channels(x, self.channels, self, name="z" if inverse else "x")

    def extra_repr(self) -> str:
        return str(self.channels)
