"""Input checks shared by every layer: bad input raises, it never becomes a silent NaN.

Every check raises ``TypeError`` (wrong kind of object, wrong dtype) or ``ValueError``
(wrong shape, non-finite values, wrong device) with a message that says what was
expected and what was given. The finiteness check synchronises with the GPU; turn
it off for speed with :func:`set_validation` once a model is debugged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "set_validation",
    "validation_enabled",
    "check_tensor",
    "check_features",
    "check_image",
    "check_matches_module",
    "check_channels",
    "check_positive_int",
]

_VALIDATE = True


def set_validation(enabled: bool) -> None:
    """Turn the finiteness checks on (the default) or off for every layer."""
    global _VALIDATE
    _VALIDATE = bool(enabled)


def validation_enabled() -> bool:
    """Whether the finiteness checks are on."""
    return _VALIDATE


def check_tensor(x: object, name: str = "x") -> torch.Tensor:
    """Check that ``x`` is a floating-point tensor with finite values."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected {name} to be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"expected {name} to be a floating-point tensor, got dtype {x.dtype}")
    # The sum is finite whenever every value is (barring overflow), and costs one pass
    # with no temporary mask; only when it is not do we look element by element.
    if _VALIDATE and not bool(torch.isfinite(x.sum())) and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"expected {name} to be finite, got {bad} non-finite value(s) (NaN or inf) "
            f"in a tensor of shape {tuple(x.shape)}"
        )
    return x


def check_features(x: object, features: int, name: str = "x") -> torch.Tensor:
    """Check that ``x`` is a finite ``(batch, features)`` tensor."""
    x = check_tensor(x, name)
    if x.dim() != 2 or x.shape[1] != features:
        raise ValueError(f"expected {name} of shape (batch, {features}), got {tuple(x.shape)}")
    return x


def check_image(
    x: object, channels: int | None = None, name: str = "x", size: Sequence[int] | None = None
) -> torch.Tensor:
    """Check that ``x`` is a finite ``(batch, channels, height, width)`` tensor."""
    x = check_tensor(x, name)
    c = "channels" if channels is None else str(channels)
    if x.dim() != 4 or (channels is not None and x.shape[1] != channels):
        raise ValueError(
            f"expected {name} of shape (batch, {c}, height, width), got {tuple(x.shape)}"
        )
    if size is not None and tuple(x.shape[2:]) != tuple(size):
        raise ValueError(f"expected {name} of spatial size {tuple(size)}, got {tuple(x.shape[2:])}")
    return x


def check_matches_module(x: torch.Tensor, module: nn.Module, name: str = "x") -> torch.Tensor:
    """Check that ``x`` has the dtype and device of the module's parameters (or buffers)."""
    reference = next(iter(module.parameters()), None)
    if reference is None:
        reference = next((b for b in module.buffers() if b.is_floating_point()), None)
    if reference is None:
        return x
    if x.dtype != reference.dtype:
        raise TypeError(
            f"expected {name} of dtype {reference.dtype} (the dtype of "
            f"{type(module).__name__}'s parameters), got {x.dtype}; "
            f"convert one of them, e.g. module.to({x.dtype})"
        )
    if x.device != reference.device:
        raise ValueError(
            f"expected {name} on device {reference.device} (where "
            f"{type(module).__name__}'s parameters live), got {x.device}"
        )
    return x


def check_channels(x: object, channels: int, module: nn.Module, name: str = "x") -> torch.Tensor:
    """Check that ``x`` is a finite ``(batch, channels)`` or ``(batch, channels, h, w)`` tensor.

    It must also have the dtype and device of ``module``'s parameters. Layers that act on
    dim 1 of vectors and images alike (ActNorm, 1x1 convolutions) use this check.
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
