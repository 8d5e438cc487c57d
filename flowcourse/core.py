r"""The change of variables: transforms, their composition, and a flow.

**The direction convention** (the only one in this package): a transform's
``forward(x, context=None)`` maps *data to noise* and returns ``(z, log_abs_det)`` with
``log_abs_det = log|det ∂z/∂x|`` of shape ``(batch,)``; ``inverse(z, context=None)``
maps noise back to data and returns ``(x, log_abs_det)`` of the inverse map,
``log|det ∂x/∂z|``. With a base density :math:`p_Z`,

.. math::

    \log p_X(x) = \log p_Z(f(x)) + \log \left|\det \frac{\partial f(x)}{\partial x}\right|,

and composing transforms :math:`f = f_K \circ \dots \circ f_1` sums their
log-determinants. A *conditional* flow models :math:`p(x \mid c)`: every layer receives
the same ``context`` :math:`c`, one row per sample, and layers that have no use for it
accept it and ignore it. Taught in the chapter *Change of variables*.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from torch import Tensor, nn

from flowcourse.validation import (
    at_door,
    check_context,
    check_int,
    check_matches_module,
    check_positive_int,
    check_tensor,
    inside,
    validated,
)

__all__ = ["Transform", "Compose", "Inverse", "StandardNormal", "Flow"]

T = TypeVar("T")


class Transform(nn.Module):
    r"""A bijection with a tractable log-determinant.

    Subclasses implement ``forward(x, context=None) -> (z, log_abs_det)`` (data to noise)
    and ``inverse(z, context=None) -> (x, log_abs_det)`` (noise to data). Both
    log-determinants have shape ``(batch,)``: the Jacobian is summed over every non-batch
    axis. ``context`` (one row per sample) conditions the layers that use one; the others
    accept it and ignore it.

    **Checks.** A subclass's ``forward`` and ``inverse`` are wrapped (see
    :func:`flowcourse.validation.validated`): called directly by a user, the layer first
    runs :meth:`check_input`; called from inside a flow, it trusts its input (the flow
    checked it at the door). So a layer's own code is only its computation; to check
    what it accepts, override :meth:`check_input`. A layer made of other layers sets
    ``container = True``: called directly, it lets each inner layer check its own input.
    ``set_validation(True)`` makes every layer check its input, for debugging.
    """

    #: True for a layer made of other layers that check their own inputs (``Compose``).
    container: bool = False

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        for name, inverse in (("forward", False), ("inverse", True)):
            method = cls.__dict__.get(name)
            if callable(method) and not getattr(method, "validated", False):
                setattr(cls, name, validated(method, inverse=inverse))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError(f"{type(self).__name__} does not implement inverse")

    def check_input(self, x: object, inverse: bool = False, context: Tensor | None = None) -> None:
        """Raise if ``x`` (``z`` when ``inverse``) is not an input this layer accepts.

        The package's layers override it to check their type, shape, dtype, device and
        finiteness (see :mod:`flowcourse.validation`). This default checks nothing: a
        layer that does not say what it accepts is trusted (and a flow around it checks
        its input at the door).
        """


def apply(method: Callable[..., T], x: Tensor, context: Tensor | None) -> T:
    """``method(x, context=context)``, or ``method(x)`` without a context.

    Containers call their layers through this, so a layer (or a model's ``log_prob``)
    written without a ``context`` argument still works without a context.
    """
    return method(x) if context is None else method(x, context=context)


class Compose(Transform):
    r"""Apply transforms one after the other: :math:`f = f_K \circ \dots \circ f_1`.

    ``forward`` runs ``transforms[0]`` first and returns
    :math:`\sum_k \log|\det J_{f_k}|`; ``inverse`` runs them in reverse order. A
    ``context`` goes to every transform.

    Example:
        >>> from flowcourse.core import Compose
        >>> flow = Compose()  # the identity
        >>> z, log_abs_det = flow(torch.zeros(3, 2))
        >>> log_abs_det.shape
        torch.Size([3])
    """

    def __init__(self, *transforms: Transform | Sequence[Transform]) -> None:
        super().__init__()
        if len(transforms) == 1 and isinstance(transforms[0], (list, tuple)):
            transforms = tuple(transforms[0])
        for i, t in enumerate(transforms):
            if not isinstance(t, Transform):
                raise TypeError(
                    f"expected every element of Compose to be a Transform, "
                    f"got {type(t).__name__} at position {i}"
                )
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total = x.new_zeros(x.shape[0])
        for transform in self.transforms:
            x, log_abs_det = apply(transform, x, context)
            total = total + log_abs_det
        return x, total

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total = z.new_zeros(z.shape[0])
        for transform in reversed(self.transforms):
            z, log_abs_det = apply(transform.inverse, z, context)
            total = total + log_abs_det
        return z, total

    container = True

    def check_input(self, x: object, inverse: bool = False, context: Tensor | None = None) -> None:
        """A tensor; the transforms check the rest, each its own input."""
        if not len(self.transforms):
            check_tensor(x, "z" if inverse else "x")
        elif not isinstance(x, Tensor):
            name = "z" if inverse else "x"
            raise TypeError(f"expected {name} to be a torch.Tensor, got {type(x).__name__}")

    def __len__(self) -> int:
        return len(self.transforms)

    def __getitem__(self, index: int) -> Transform:
        return self.transforms[index]


class Inverse(Transform):
    """Swap a transform's directions: ``Inverse(t).forward`` is ``t.inverse``."""

    def __init__(self, transform: Transform) -> None:
        super().__init__()
        if not isinstance(transform, Transform):
            raise TypeError(f"expected a Transform, got {type(transform).__name__}")
        self.transform = transform

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return apply(self.transform.inverse, x, context)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return apply(self.transform, z, context)

    container = True

    def check_input(self, x: object, inverse: bool = False, context: Tensor | None = None) -> None:
        """Nothing: the wrapped transform checks its own input."""


class StandardNormal(nn.Module):
    r"""The base density :math:`\mathcal{N}(0, I)` over tensors of shape ``event_shape``.

    ``log_prob`` sums over the event axes and returns shape ``(batch,)``.
    Its zero buffer gives it a device and a dtype, so ``flow.to("cuda")`` moves it.
    """

    def __init__(self, event_shape: int | Sequence[int]) -> None:
        super().__init__()
        if isinstance(event_shape, int) and not isinstance(event_shape, bool):
            event_shape = (event_shape,)
        if not isinstance(event_shape, Sequence) or isinstance(event_shape, str):
            kind = type(event_shape).__name__
            raise TypeError(f"expected event_shape to be an int or a sequence of ints, got {kind}")
        if not event_shape:
            raise ValueError("expected a non-empty event shape, got ()")
        self.event_shape = tuple(
            check_positive_int(s, "every size in the event shape") for s in event_shape
        )
        self.register_buffer("_reference", torch.zeros(()))

    @property
    def dim(self) -> int:
        return math.prod(self.event_shape)

    def log_prob(self, z: Tensor) -> Tensor:
        if tuple(z.shape[1:]) != self.event_shape:
            raise ValueError(
                f"expected z of shape (batch, {', '.join(map(str, self.event_shape))}), "
                f"got {tuple(z.shape)}"
            )
        flat = z.reshape(z.shape[0], -1)
        return -0.5 * (flat**2).sum(dim=1) - 0.5 * self.dim * math.log(2 * math.pi)

    def sample(self, num_samples: int, temperature: float = 1.0) -> Tensor:
        """Draw ``num_samples`` points; ``temperature`` scales the standard deviation."""
        shape = (num_samples, *self.event_shape)
        ref = self._reference
        return temperature * torch.randn(shape, device=ref.device, dtype=ref.dtype)


class Flow(nn.Module):
    r"""A normalizing flow: a transform from data to noise plus a base density.

    .. math::

        \log p(x) = \log p_Z(z) + \log|\det \partial z / \partial x|, \qquad z = f(x).

    Sampling runs the transform backwards: :math:`x = f^{-1}(z)`, :math:`z \sim p_Z`.
    The flow works on whatever device and dtype its parameters have.

    **A conditional flow** :math:`p(x \mid c)` is built with ``context_features`` :math:`> 0`;
    then every method takes a ``context`` of shape ``(batch, context_features)``, one row
    per sample, passed to every layer (through ``embedding`` first, if given: a network
    that turns the raw context into the one the layers read, as nflows' embedding net).
    To sample, give one context row per sample: ``sample(n, context=c)`` needs ``c`` of
    shape ``(n, context_features)``; for ``k`` samples of each row of ``c`` pass
    ``c.repeat_interleave(k, dim=0)``. A flow built without ``context_features`` refuses
    a context.

    **Checks.** The flow's methods are doors (see :mod:`flowcourse.validation`): they check
    ``x`` and ``context`` once (type, shape, dtype, device, finiteness) and the layers
    inside then trust them.

    Example:
        >>> from flowcourse.core import Compose, Flow, StandardNormal
        >>> flow = Flow(Compose(), StandardNormal(2))
        >>> flow.log_prob(torch.zeros(1, 2))
        tensor([-1.8379])
    """

    def __init__(
        self,
        transform: Transform,
        base: StandardNormal | nn.Module,
        *,
        context_features: int = 0,
        embedding: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(transform, Transform):
            raise TypeError(f"expected transform to be a Transform, got {type(transform).__name__}")
        if not (hasattr(base, "log_prob") and hasattr(base, "sample")):
            raise TypeError(
                f"expected base to have log_prob and sample methods, got {type(base).__name__}"
            )
        check_int(context_features, "context_features", 0)
        if embedding is not None and not isinstance(embedding, nn.Module):
            raise TypeError(
                f"expected embedding to be an nn.Module, got {type(embedding).__name__}"
            )
        if embedding is not None and not context_features:
            raise ValueError("expected context_features > 0 with an embedding, got 0")
        self.transform = transform
        self.base = base
        self.context_features = context_features
        self.embedding = embedding

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Map data to noise: returns ``(z, log_abs_det)``."""
        if at_door():
            self._check_input(x, context)
        with inside():
            return apply(self.transform, x, self._embed(context))

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Exact log-density of ``x`` (given ``context``) in nats, shape ``(batch,)``."""
        z, log_abs_det = self.forward(x, context)
        return self.base.log_prob(z) + log_abs_det

    def sample(
        self, num_samples: int, temperature: float = 1.0, context: Tensor | None = None
    ) -> Tensor:
        """Draw ``num_samples`` samples; ``temperature < 1`` samples nearer the mode.

        With a context, one sample per row: ``context`` has shape ``(num_samples, C)``.
        """
        self._check_sampling(num_samples, context)
        with inside():
            z = self.base.sample(num_samples, temperature=temperature)
            x, _ = apply(self.transform.inverse, z, self._embed(context))
        return x

    def sample_and_log_prob(
        self, num_samples: int, context: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        r"""Draw samples and their log-density in one inverse pass.

        :math:`\log p(x) = \log p_Z(z) - \log|\det \partial x/\partial z|`. The samples are
        reparametrised, so gradients of the result reach the flow's parameters (the
        reverse-KL objective of variational inference needs this). With a context, one
        sample per row, as in :meth:`sample`.
        """
        self._check_sampling(num_samples, context)
        with inside():
            z = self.base.sample(num_samples)
            x, log_abs_det = apply(self.transform.inverse, z, self._embed(context))
        return x, self.base.log_prob(z) - log_abs_det

    def _embed(self, context: Tensor | None) -> Tensor | None:
        if context is None or self.embedding is None:
            return context
        return self.embedding(context)

    def _check_input(self, x: object, context: object) -> None:
        x = check_tensor(x)
        event_shape = getattr(self.base, "event_shape", None)
        if event_shape is not None and tuple(x.shape[1:]) != tuple(event_shape):
            expected = ", ".join(map(str, event_shape))
            raise ValueError(f"expected x of shape (batch, {expected}), got {tuple(x.shape)}")
        check_matches_module(x, self)
        self._check_context(context, x.shape[0])

    def _check_sampling(self, num_samples: object, context: object) -> None:
        check_positive_int(num_samples, "num_samples")
        if at_door():
            self._check_context(context, num_samples)

    def _check_context(self, context: object, batch_size: int) -> None:
        check_context(context, self.context_features, batch_size, self)
