r"""NICE's diagonal scaling layer: the only place a NICE model changes volume."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from flowcourse.core import Transform
from flowcourse.validation import check_matches_module, check_positive_int, check_tensor

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
        if not isinstance(event_shape, Sequence) or isinstance(event_shape, str):
            raise TypeError(
                f"expected event_shape to be an int or a sequence of ints, "
                f"got {type(event_shape).__name__}"
            )
        if not event_shape:
            raise ValueError("expected a non-empty event_shape, got ()")
        for size in event_shape:
            check_positive_int(size, "every size in event_shape")
        self.event_shape = tuple(event_shape)
        self.log_scale = nn.Parameter(torch.zeros(self.event_shape))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x * self.log_scale.exp(), self.log_scale.sum().repeat(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return z * (-self.log_scale).exp(), -self.log_scale.sum().repeat(z.shape[0])

    def check_input(self, x: object, inverse: bool = False, context: Tensor | None = None) -> None:
        name = "z" if inverse else "x"
        x = check_tensor(x, name)
        if tuple(x.shape[1:]) != self.event_shape or x.dim() < 2:
            expected = ", ".join(map(str, self.event_shape))
            raise ValueError(f"expected {name} of shape (batch, {expected}), got {tuple(x.shape)}")
        check_matches_module(x, self, name)

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}"
