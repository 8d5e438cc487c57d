"""Input checks for the Glow layers, which accept vectors and images alike."""

from __future__ import annotations

import torch
from torch import nn

from flowcourse.validation import check_matches_module, check_tensor

__all__ = ["check_channels", "check_positive_int"]


def check_channels(x: object, channels: int, module: nn.Module, name: str = "x") -> torch.Tensor:
    """Check that ``x`` is a finite ``(batch, channels)`` or ``(batch, channels, h, w)`` tensor.

    It must also have the dtype and device of ``module``'s parameters.
    """
    x = check_tensor(x, name)
    if x.dim() not in (2, 4) or x.shape[1] != channels:
        raise ValueError(
            f"expected {name} of shape (batch, {channels}) or "
            f"(batch, {channels}, height, width), got {tuple(x.shape)}"
        )
    return check_matches_module(x, module, name)


def check_positive_int(value: object, name: str) -> int:
    """Check that a constructor argument is a positive ``int`` (``bool`` is refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected {name} to be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"expected {name} to be a positive int, got {value}")
    return value
