r"""RealNVP's squeeze: trade spatial resolution for channels, without changing any value."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from flowcourse.core import Transform
from flowcourse.validation import check_image

__all__ = ["Squeeze"]


class Squeeze(Transform):
    r"""Turn each 2x2 block of pixels into 4 channels: ``(B, C, H, W) -> (B, 4C, H/2, W/2)``.

    Output channel :math:`4c + 2i + j` at pixel :math:`(h, w)` holds input channel
    :math:`c` at pixel :math:`(2h + i, 2w + j)` (the order of
    :func:`torch.nn.functional.pixel_unshuffle`). It only moves values, so the Jacobian
    is a permutation matrix and :math:`\log|\det \partial z/\partial x| = 0`. After a
    squeeze, channel-wise masks mix values that were spatial neighbours
    (Dinh et al. 2017). Taught in the chapter *RealNVP*.

    Example:
        >>> import torch
        >>> z, log_abs_det = Squeeze()(torch.arange(4.0).reshape(1, 1, 2, 2))
        >>> z.flatten(), z.shape
        (tensor([0., 1., 2., 3.]), torch.Size([1, 4, 1, 1]))
    """

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return F.pixel_unshuffle(x, 2), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return F.pixel_shuffle(z, 2), z.new_zeros(z.shape[0])

    def check_input(self, x: object, inverse: bool = False, context: Tensor | None = None) -> None:
        if not inverse:
            check_even_image(x, "x", "to squeeze")
            return
        z = check_image(x, name="z")
        if z.shape[1] % 4:
            raise ValueError(
                f"expected z with a number of channels divisible by 4 to unsqueeze, "
                f"got {z.shape[1]} (shape {tuple(z.shape)})"
            )


def check_even_image(x: object, name: str = "x", why: str = "") -> Tensor:
    """Check that ``x`` is a finite image batch with an even height and width."""
    x = check_image(x, name=name)
    height, width = x.shape[2:]
    if height % 2 or width % 2:
        raise ValueError(
            f"expected {name} with an even height and width{' ' + why if why else ''}, "
            f"got height {height} "
            f"and width {width} (shape {tuple(x.shape)})"
        )
    return x
