r"""Binary masks that split an input into the part a coupling keeps and the part it changes.

A mask is a ``bool`` tensor of the event shape (or broadcastable to it): ``True`` marks
the values that pass through a coupling unchanged and condition the rest, ``False``
the values that get transformed. Alternating the mask between layers lets every value
be transformed. Vector masks have shape ``(features,)``; image masks have shape
``(1, height, width)`` (a checkerboard, the same for every channel) or
``(channels, 1, 1)`` (half the channels, the same at every pixel). Taught in the
chapters *NICE* and *RealNVP* (Dinh et al. 2015, 2017).

Example:
    >>> alternating_mask(4)
    tensor([ True, False,  True, False])
    >>> channel_mask(4).flatten()
    tensor([ True,  True, False, False])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flowcourse.validation import (
    check_context,
    check_int,
    check_matches_module,
    check_positive_int,
    check_tensor,
)

__all__ = [
    "alternating_mask",
    "half_mask",
    "checkerboard_mask",
    "channel_mask",
    "check_mask",
    "check_vector_mask",
    "check_image_mask",
    "check_against_mask",
    "check_coupling_input",
]


def _check_parity(parity: object) -> int:
    if check_int(parity, "parity") not in (0, 1):
        raise ValueError(f"expected parity to be 0 or 1, got {parity!r}")
    return parity


def alternating_mask(features: int, parity: int = 0) -> Tensor:
    r"""Keep every other feature: :math:`m_i = [\, i \bmod 2 = \text{parity} \,]`.

    Returns a ``bool`` tensor of shape ``(features,)``. Use ``parity=0`` and ``parity=1``
    in alternate layers (NICE, Dinh et al. 2015; chapter *NICE*).

    Example:
        >>> alternating_mask(5, parity=1)
        tensor([False,  True, False,  True, False])
    """
    check_int(features, "features", 2, "a coupling needs a part to keep and a part to change")
    parity = _check_parity(parity)
    return torch.arange(features) % 2 == parity


def half_mask(features: int, first: bool = True) -> Tensor:
    r"""Keep the first half of the features (``first=True``) or the second half.

    With :math:`h = \lfloor D/2 \rfloor`, :math:`m_i = [\, i < h \,]`; ``first=False`` gives
    the complement, so the two masks alternate cleanly even for odd ``features``
    (chapter *NICE*).

    Example:
        >>> half_mask(5, first=False)
        tensor([False, False,  True,  True,  True])
    """
    check_int(features, "features", 2, "a coupling needs a part to keep and a part to change")
    mask = torch.arange(features) < features // 2
    return mask if first else ~mask


def checkerboard_mask(height: int, width: int, parity: int = 0) -> Tensor:
    r"""A checkerboard over the pixels: :math:`m_{hw} = [\, (h + w) \bmod 2 = \text{parity} \,]`.

    Returns a ``bool`` tensor of shape ``(1, height, width)`` that broadcasts over the
    channels. RealNVP's spatial masking (Dinh et al. 2017; chapter *RealNVP*).

    Example:
        >>> checkerboard_mask(2, 3)
        tensor([[[ True, False,  True],
                 [False,  True, False]]])
    """
    check_positive_int(height, "height")
    check_positive_int(width, "width")
    if height * width < 2:
        raise ValueError(
            f"expected an image with at least 2 pixels for a checkerboard mask, "
            f"got height {height} and width {width}"
        )
    parity = _check_parity(parity)
    rows = torch.arange(height).reshape(-1, 1)
    cols = torch.arange(width).reshape(1, -1)
    return ((rows + cols) % 2 == parity).unsqueeze(0)


def channel_mask(channels: int, first: bool = True) -> Tensor:
    r"""Keep the first half of the channels (``first=True``) or the second half.

    Returns a ``bool`` tensor of shape ``(channels, 1, 1)`` that broadcasts over the pixels:
    :math:`m_c = [\, c < C/2 \,]`. RealNVP's channel-wise masking, used after a squeeze
    (Dinh et al. 2017; chapter *RealNVP*).

    Example:
        >>> channel_mask(2, first=False).flatten()
        tensor([False,  True])
    """
    check_int(channels, "channels", 2, "a coupling needs a part to keep and a part to change")
    if channels % 2:
        raise ValueError(f"expected an even number of channels for a channel mask, got {channels}")
    mask = torch.arange(channels) < channels // 2
    return (mask if first else ~mask).reshape(channels, 1, 1)


def check_mask(mask: object) -> Tensor:
    """Check that ``mask`` is a vector or image mask that keeps some values and changes others."""
    if not isinstance(mask, Tensor):
        raise TypeError(f"expected mask to be a torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(
            f"expected mask to be a bool tensor (True = kept), got dtype {mask.dtype}; "
            "build one with alternating_mask, half_mask, checkerboard_mask or channel_mask"
        )
    if mask.dim() not in (1, 3):
        raise ValueError(
            "expected mask of shape (features,) or (channels, height, width) with 1s to "
            f"broadcast, got {tuple(mask.shape)}"
        )
    if bool(mask.all()) or not bool(mask.any()):
        raise ValueError(
            f"expected mask to have both True (kept) and False (transformed) entries, "
            f"got all {bool(mask.flatten()[0])}"
        )
    return mask


def check_vector_mask(mask: object) -> Tensor:
    """Check that ``mask`` is a vector mask of shape ``(features,)``."""
    mask = check_mask(mask)
    if mask.dim() != 1:
        raise ValueError(f"expected a vector mask of shape (features,), got {tuple(mask.shape)}")
    return mask


def check_image_mask(mask: object, in_channels: int) -> Tensor:
    """Check that ``mask`` is an image mask for inputs with ``in_channels`` channels."""
    mask = check_mask(mask)
    check_positive_int(in_channels, "in_channels")
    if mask.dim() != 3:
        raise ValueError(
            f"expected an image mask of shape (channels, height, width), got {tuple(mask.shape)}"
        )
    if mask.shape[0] not in (1, in_channels):
        raise ValueError(
            f"expected a mask with 1 or in_channels={in_channels} channels, got {mask.shape[0]}"
        )
    return mask


def _expected_shape(mask: Tensor, in_channels: int | None) -> list[int | str]:
    """The event shape a mask accepts, with names for the axes it broadcasts over."""
    if mask.dim() == 1:
        return [mask.shape[0]]
    names = ("channels", "height", "width")
    shape: list[int | str] = [
        name if size == 1 else size for name, size in zip(names, mask.shape, strict=True)
    ]
    if in_channels is not None:
        shape[0] = in_channels
    return shape


def check_against_mask(
    x: object, mask: Tensor, name: str = "x", in_channels: int | None = None
) -> Tensor:
    """Check that ``x`` is a finite float tensor whose event shape the mask fits.

    A mask axis of size 1 broadcasts (any size is accepted there, except that the
    channels must equal ``in_channels`` when it is given); any other size must match
    exactly, since an input the mask only partly covers would be silently wrong.
    """
    x = check_tensor(x, name)
    expected = _expected_shape(mask, in_channels)
    fits = x.dim() == len(expected) + 1 and all(
        isinstance(e, str) or e == s for e, s in zip(expected, x.shape[1:], strict=True)
    )
    if not fits:
        raise ValueError(
            f"expected {name} of shape (batch, {', '.join(map(str, expected))}) to match the "
            f"mask of shape {tuple(mask.shape)}, got {tuple(x.shape)}"
        )
    return x


def check_coupling_input(
    layer: nn.Module, x: object, inverse: bool = False, context: Tensor | None = None
) -> None:
    """A coupling's input check: ``x`` (``z`` for ``inverse``) fits ``layer.mask`` and has
    the layer's dtype and device; ``context`` is what ``layer.context_features`` says."""
    name = "z" if inverse else "x"
    x = check_against_mask(x, layer.mask, name, getattr(layer, "in_channels", None))
    check_matches_module(x, layer, name)
    check_context(context, layer.context_features, x.shape[0], layer)
