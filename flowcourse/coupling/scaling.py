r"""NICE's diagonal scaling layer: the only place a NICE model changes volume."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from flowcourse.core import Transform
from flowcourse.validation import check_matches_module, check_tensor

__all__ = ["DiagonalScaling"]


class DiagonalScaling(Transform):
    r"""Scale every value by a learned factor: :math:`z = x \odot e^{s}`.

    Additive couplings preserve volume, so NICE (Dinh et al. 2015) ends with this layer
    to let the model stretch or shrink each dimension. The Jacobian is
    :math:`\operatorname{diag}(e^{s})`, so
    :math:`\log|\det \partial z/\partial x| = \sum_i s_i`, the same for every sample.
    Parameterising by the log-scale :math:`s` keeps the factor positive; it starts at
    zero (the identity). Taught in the chapter *NICE*.

    Arguments:
        event_shape: the shape of one sample, ``D`` or ``(D,)`` for vectors,
            ``(C, H, W)`` for images; :math:`s` has this shape.

    Example:
        >>> import torch
        >>> layer = DiagonalScaling(3)
        >>> with torch.no_grad():
        ...     _ = layer.log_scale.fill_(0.5)
        >>> z, log_abs_det = layer(torch.ones(2, 3))
        >>> log_abs_det.tolist()
        [1.5, 1.5]
    """

    def __init__(self, event_shape: int | Sequence[int]) -> None:
        super().__init__()
        if isinstance(event_shape, int) and not isinstance(event_shape, bool):
            event_shape = (event_shape,)
        valid = isinstance(event_shape, Sequence) and len(event_shape) > 0
        valid = valid and all(isinstance(s, int) and not isinstance(s, bool) for s in event_shape)
        if not valid or any(s < 1 for s in event_shape):
            raise ValueError(
                f"expected event_shape to be a positive int or a non-empty sequence of "
                f"positive ints, got {event_shape!r}"
            )
        self.event_shape = tuple(event_shape)
        self.log_scale = nn.Parameter(torch.zeros(self.event_shape))

    def _check(self, x: object, name: str) -> Tensor:
        x = check_tensor(x, name)
        if tuple(x.shape[1:]) != self.event_shape or x.dim() < 2:
            expected = ", ".join(map(str, self.event_shape))
            raise ValueError(f"expected {name} of shape (batch, {expected}), got {tuple(x.shape)}")
        return check_matches_module(x, self, name)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self._check(x, "x")
        return x * self.log_scale.exp(), self.log_scale.sum().repeat(x.shape[0])

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        z = self._check(z, "z")
        return z * (-self.log_scale).exp(), -self.log_scale.sum().repeat(z.shape[0])

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}"
