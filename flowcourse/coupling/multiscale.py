r"""RealNVP's multi-scale architecture: factor out half the variables at each scale."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from flowcourse.core import Compose, Transform, apply
from flowcourse.coupling.affine import AffineCoupling
from flowcourse.coupling.masks import channel_mask, checkerboard_mask
from flowcourse.coupling.squeeze import Squeeze, check_even_image
from flowcourse.validation import (
    at_door,
    check_image,
    check_image_size,
    check_matches_module,
    check_positive_int,
)

__all__ = ["MultiScale", "realnvp_multiscale"]


class MultiScale(Transform):
    r"""One scale of RealNVP (Dinh et al. 2017): transform, squeeze, factor out half.

    ``transform`` maps ``(B, C, H, W)`` to ``(B, 4C, H/2, W/2)`` (it contains one
    :class:`~flowcourse.coupling.Squeeze`). Its output :math:`h` is split along the
    channels into :math:`(h_1, h_2)`; :math:`h_1` is final noise, factored out, and only
    :math:`h_2` goes on to ``inner``, the next scale:

    .. math::

        (h_1, h_2) = \operatorname{split}(f(x)), \qquad
        z = \operatorname{unsqueeze}\big(h_1, g(h_2)\big), \qquad
        \log|\det J| = \log|\det J_f| + \log|\det J_g|.

    The unsqueeze (a permutation, log-determinant 0) puts the result back into the
    input's shape, so a whole multi-scale model is one transform from ``(B, C, H, W)``
    to ``(B, C, H, W)`` and works with ``Flow(model, StandardNormal((C, H, W)))``.
    Each scale halves the variables that later, deeper layers work on, which saves
    computation and lets early factored-out variables model fine detail.
    Taught in the chapter *RealNVP*.

    Arguments:
        transform: the layers of this scale, ending at ``(B, 4C, H/2, W/2)``.
        inner: the next scale, on ``(B, 2C, H/2, W/2)``; ``None`` factors out both halves.

    Example:
        >>> import torch
        >>> from flowcourse.core import Compose
        >>> from flowcourse.coupling import MultiScale, Squeeze
        >>> model = MultiScale(Compose(Squeeze()), inner=None)
        >>> z, log_abs_det = model(torch.randn(2, 1, 4, 4))
        >>> z.shape
        torch.Size([2, 1, 4, 4])
    """

    container = True

    def __init__(self, transform: Transform, inner: Transform | None = None) -> None:
        super().__init__()
        if not isinstance(transform, Transform):
            raise TypeError(f"expected transform to be a Transform, got {type(transform).__name__}")
        if inner is not None and not isinstance(inner, Transform):
            raise TypeError(f"expected inner to be a Transform or None, got {type(inner).__name__}")
        self.transform = transform
        self.inner = inner

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        batch, channels, height, width = x.shape
        h, log_abs_det = apply(self.transform, x, context)
        expected = (batch, 4 * channels, height // 2, width // 2)
        if tuple(h.shape) != expected:
            raise ValueError(
                f"expected the transform of a MultiScale to map {tuple(x.shape)} to {expected} "
                f"(it must contain one Squeeze), got {tuple(h.shape)}"
            )
        factored, rest = h.chunk(2, dim=1)
        if self.inner is not None:
            rest, inner_log_abs_det = apply(self.inner, rest, context)
            log_abs_det = log_abs_det + inner_log_abs_det
        return F.pixel_shuffle(torch.cat([factored, rest], dim=1), 2), log_abs_det

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        factored, rest = self.split(z)
        log_abs_det = z.new_zeros(z.shape[0])
        if self.inner is not None:
            rest, log_abs_det = apply(self.inner.inverse, rest, context)
        h = torch.cat([factored, rest], dim=1)
        x, outer_log_abs_det = apply(self.transform.inverse, h, context)
        return x, log_abs_det + outer_log_abs_det

    def split(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Split a final ``z`` into this scale's factored-out half and the inner scale's half.

        Both have shape ``(B, 2C, H/2, W/2)``; the first is fixed once this scale is done,
        whatever the inner scales do.
        """
        if at_door():
            self.check_input(z, inverse=True)
        factored, rest = F.pixel_unshuffle(z, 2).chunk(2, dim=1)
        return factored, rest

    def check_input(self, x: object, inverse: bool = False, context: Tensor | None = None) -> None:
        """An image (with an even height and width for ``inverse``); the layers inside
        check the rest, each its own input."""
        name = "z" if inverse else "x"
        image = check_even_image(x, name) if inverse else check_image(x, name=name)
        check_matches_module(image, self, name)


def realnvp_multiscale(
    in_channels: int,
    image_size: int | Sequence[int],
    num_scales: int = 2,
    hidden_channels: int = 64,
    num_hidden_layers: int = 1,
    log_scale_bound: float = 3.0,
) -> Transform:
    r"""RealNVP's image transform (Dinh et al. 2017, Sec. 3.6) with ``num_scales`` scales.

    Every scale but the last is a :class:`MultiScale`: 3 checkerboard affine couplings
    (alternating parity), a squeeze, 3 channel-wise affine couplings (alternating halves),
    then half the channels are factored out and the rest go to the next scale. The last
    scale is 4 checkerboard couplings. With ``num_scales`` scales the image is squeezed
    ``num_scales - 1`` times, so its height and width must be divisible by
    :math:`2^{\text{num\_scales} - 1}`. A 1x8x8 image with 2 scales: couplings on 1x8x8,
    squeeze to 4x4x4, factor out 2x4x4, last scale on 2x4x4. The conditioners are
    :class:`~flowcourse.nets.ConvNet` (the paper uses deeper ResNets with batch norm).
    The result maps ``(B, C, H, W)`` to noise of the same shape.
    Taught in the chapter *RealNVP*.

    Example:
        >>> import torch
        >>> model = realnvp_multiscale(1, 8, num_scales=2, hidden_channels=8)
        >>> z, log_abs_det = model(torch.randn(3, 1, 8, 8))
        >>> z.shape, log_abs_det.shape
        (torch.Size([3, 1, 8, 8]), torch.Size([3]))
    """
    for name, value in [
        ("in_channels", in_channels),
        ("num_scales", num_scales),
        ("hidden_channels", hidden_channels),
        ("num_hidden_layers", num_hidden_layers),
    ]:
        check_positive_int(value, name)
    height, width = check_image_size(image_size)
    factor = 2 ** (num_scales - 1)
    if height % factor or width % factor:
        raise ValueError(
            f"expected an image height and width divisible by 2**(num_scales - 1) = {factor} "
            f"to halve them {num_scales - 1} times, got height {height} and width {width}"
        )
    if (height // factor) * (width // factor) < 2:
        raise ValueError(
            f"expected at least 2 pixels at the last scale for its checkerboard couplings, "
            f"got {height // factor}x{width // factor} from an image of {height}x{width} "
            f"with {num_scales} scales; use fewer scales"
        )

    def coupling(mask: Tensor, channels: int) -> AffineCoupling:
        return AffineCoupling.for_images(
            mask, channels, hidden_channels, num_hidden_layers, log_scale_bound
        )

    def checkerboards(count: int, channels: int, height: int, width: int) -> list[Transform]:
        return [coupling(checkerboard_mask(height, width, i % 2), channels) for i in range(count)]

    # Build from the innermost (last) scale outwards, as each scale wraps the next.
    shapes = [(in_channels * 2**k, height // 2**k, width // 2**k) for k in range(num_scales)]
    model: Transform = Compose(*checkerboards(4, *shapes[-1]))
    for channels, h, w in reversed(shapes[:-1]):
        squeezed = 4 * channels
        transform = Compose(
            *checkerboards(3, channels, h, w),
            Squeeze(),
            *[coupling(channel_mask(squeezed, first=i % 2 == 0), squeezed) for i in range(3)],
        )
        model = MultiScale(transform, model)
    return model
