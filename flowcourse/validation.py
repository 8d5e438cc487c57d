r"""Input checks: bad input raises an error that says what was expected, never a silent NaN.

**Where inputs are checked: once, at the door.** A door is where a user hands a value in:
``Flow.log_prob``, ``Flow.sample``, ``Flow.sample_and_log_prob`` and ``Flow.forward``;
:func:`flowcourse.training.fit` and :func:`~flowcourse.training.fit_reverse_kl`; the
functions of :mod:`flowcourse.checks`; every constructor; and a layer called directly,
on its own (``layer(x)`` or ``layer.inverse(z)`` outside any flow). There the input is
checked completely: its type, dtype, shape, device, and that every value is finite.
Inside a flow the layers trust what the previous layer gave them and check nothing, so
a batch is checked once per call, not once per layer (a Glow used to check the same
tensor six times, each time reading a value back from the GPU).

:func:`set_validation` chooses how much is checked:

- ``"doors"`` (the default): the doors check everything, layers inside a flow nothing;
- ``True`` (or ``"layers"``): every layer checks its own input, even deep inside a flow.
  Turn this on to debug a model that turns a finite input into a NaN somewhere in the
  middle: the error then names the first layer whose input was bad;
- ``False`` (or ``"off"``): the doors still check types and shapes, but not finiteness.
  The finiteness check reads one value back from the device (a GPU synchronisation);
  turn it off for speed once a model is debugged.

**Which exception.** A wrong *kind* of object raises ``TypeError`` (a list where a
tensor belongs, an integer tensor where a floating-point one belongs, a float where
an ``int`` belongs, a dtype that differs from the model's); a wrong *value* raises
``ValueError`` (a wrong shape, a NaN, a size of 0, a tensor on another device). Every
constructor and every door uses the helpers below, so the same mistake gives the same
exception everywhere. Taught in the chapter *Change of variables*.

Example:
    >>> import torch
    >>> check_positive_int(3, "features")
    3
    >>> try:
    ...     check_positive_int(2.0, "features")
    ... except TypeError as error:
    ...     print(error)
    expected features to be an int, got float
    >>> try:
    ...     check_features(torch.zeros(4, 3), features=2)
    ... except ValueError as error:
    ...     print(error)
    expected x of shape (batch, 2), got (4, 3)
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
from torch import nn

__all__ = [
    "set_validation",
    "validation_mode",
    "validation_enabled",
    "at_door",
    "inside",
    "validated",
    "check_tensor",
    "check_features",
    "check_context",
    "check_image",
    "check_matches_module",
    "check_channels",
    "check_int",
    "check_positive_int",
    "check_positive_float",
    "check_image_size",
]

_MODES = {True: "layers", False: "off", "layers": "layers", "doors": "doors", "off": "off"}
_mode = "doors"
_calls = threading.local()  # _calls.depth: how many validated calls are running in this thread


def set_validation(mode: bool | str) -> str:
    """Choose where inputs are checked; returns the previous mode, to restore it later.

    ``True`` or ``"layers"``: every layer checks its input (debugging); ``"doors"`` (the
    default): only where a user hands the input in; ``False`` or ``"off"``: no finiteness
    checks (types and shapes are still checked at the doors). See the module docstring.

    Example:
        >>> previous = set_validation(True)  # debug: every layer checks its input
        >>> previous
        'doors'
        >>> _ = set_validation(previous)
    """
    global _mode
    if isinstance(mode, bool) or mode in ("layers", "doors", "off"):
        previous, _mode = _mode, _MODES[mode]
        return previous
    raise ValueError(f'expected True, False, "layers", "doors" or "off", got {mode!r}')


def validation_mode() -> str:
    """The current mode: ``"doors"`` (the default), ``"layers"`` or ``"off"``."""
    return _mode


def validation_enabled() -> bool:
    """Whether the finiteness checks run at all (at the doors or in every layer)."""
    return _mode != "off"


def at_door() -> bool:
    """Whether a layer called now should check its input.

    True for the outermost call (a user's call) and for every call in ``"layers"`` mode.
    """
    return _mode == "layers" or getattr(_calls, "depth", 0) == 0


@contextmanager
def inside() -> Iterator[None]:
    """Mark the calls made in this block as inner calls: their layers skip their checks.

    A door uses it after checking its input, around the work it hands to its layers.
    """
    depth = getattr(_calls, "depth", 0)
    _calls.depth = depth + 1
    try:
        yield
    finally:
        _calls.depth = depth


Method = TypeVar("Method", bound=Callable[..., Any])


def validated(method: Method, inverse: bool = False) -> Method:
    """Wrap a layer's ``forward`` (or ``inverse``) so that it is a door when called directly.

    When :func:`at_door`, the wrapper first runs ``self.check_input(x, inverse, context)``.
    Then it runs the method with every call it makes marked as inside (see
    :func:`inside`): a layer trusts the work it hands on. A *container* (a module whose
    ``container`` attribute is true: ``Compose``, ``Inverse``, ``MultiScale``, ...) does
    not mark its calls, so when called directly, each layer in it checks its own input
    and an error names the layer that refused it. :class:`flowcourse.core.Transform`
    applies this wrapper to the ``forward`` and ``inverse`` of every subclass, so a
    layer's own code holds its computation and no checks.
    """

    @functools.wraps(method)
    def checked(self: nn.Module, x: object, *args: Any, **kwargs: Any) -> Any:
        depth = getattr(_calls, "depth", 0)
        if _mode == "layers" or depth == 0:
            context = kwargs.get("context", args[0] if args else None)
            self.check_input(x, inverse=inverse, context=context)
        if getattr(self, "container", False):
            return method(self, x, *args, **kwargs)
        _calls.depth = depth + 1
        try:
            return method(self, x, *args, **kwargs)
        finally:
            _calls.depth = depth

    checked.validated = True  # type: ignore[attr-defined]
    return checked  # type: ignore[return-value]


# ----------------------------------------------------------------------------- tensors


def check_tensor(x: object, name: str = "x") -> torch.Tensor:
    """Check that ``x`` is a floating-point tensor with finite values.

    The finiteness test is skipped under ``set_validation(False)``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected {name} to be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"expected {name} to be a floating-point tensor, got dtype {x.dtype}")
    # The sum is finite whenever every value is (barring overflow), and costs one pass
    # with no temporary mask; only when it is not do we look element by element.
    if _mode != "off" and not bool(torch.isfinite(x.sum())) and not bool(torch.isfinite(x).all()):
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


def check_context(
    context: object, context_features: int, batch_size: int, module: nn.Module
) -> torch.Tensor | None:
    """Check a context against what ``module`` takes: ``None`` when ``context_features`` is
    0, else a finite ``(batch_size, context_features)`` tensor (one row per sample) with
    the module's dtype and device."""
    owner = type(module).__name__
    if not context_features:
        if context is not None:
            shape = tuple(context.shape) if isinstance(context, torch.Tensor) else context
            raise ValueError(
                f"expected no context (this {owner} was built with context_features=0), got "
                f"{shape!r}; build it with context_features=... to condition it"
            )
        return None
    if context is None:
        raise ValueError(
            f"expected a context of shape (batch, {context_features}) for this {owner}, got None"
        )
    context = check_features(context, context_features, "context")
    if context.shape[0] != batch_size:
        raise ValueError(
            f"expected one context row per sample ({batch_size}), got {context.shape[0]}"
        )
    return check_matches_module(context, module, "context")


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


# ------------------------------------------------------------------ constructor arguments


def check_int(value: object, name: str, minimum: int | None = None, why: str = "") -> int:
    """Check that ``value`` is an ``int`` (``bool`` is refused), at least ``minimum`` if given.

    ``TypeError`` for another kind of object, ``ValueError`` for a value below ``minimum``;
    ``why`` says in the message why the minimum is what it is.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected {name} to be an int, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        reason = f" ({why})" if why else ""
        raise ValueError(f"expected {name} to be an int >= {minimum}{reason}, got {value}")
    return value


def check_positive_int(value: object, name: str) -> int:
    """Check that a constructor argument is a positive ``int`` (``bool`` is refused)."""
    if check_int(value, name) < 1:
        raise ValueError(f"expected {name} to be a positive int, got {value}")
    return value


def check_positive_float(value: object, name: str) -> float:
    """Check that ``value`` is a finite number above zero (an ``int`` is fine, a ``bool`` not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected {name} to be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"expected {name} to be a positive finite number, got {value!r}")
    return float(value)


def check_image_size(image_size: object) -> tuple[int, int]:
    """``(height, width)`` from an ``int`` (a square) or a pair of positive ints."""
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    if not isinstance(image_size, Sequence) or isinstance(image_size, str):
        raise TypeError(
            f"expected image_size to be an int or (height, width), got {type(image_size).__name__}"
        )
    if len(image_size) != 2:
        raise ValueError(f"expected image_size to be an int or (height, width), got {image_size!r}")
    return (
        check_positive_int(image_size[0], "the height in image_size"),
        check_positive_int(image_size[1], "the width in image_size"),
    )
