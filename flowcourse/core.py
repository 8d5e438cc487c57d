r"""The change of variables: transforms, their composition, and a flow.

**The direction convention** (the only one in this package): a transform's
``forward(x)`` maps *data to noise* and returns ``(z, log_abs_det)`` with
``log_abs_det = log|det ∂z/∂x|`` of shape ``(batch,)``; ``inverse(z)`` maps noise
back to data and returns ``(x, log_abs_det)`` of the inverse map,
``log|det ∂x/∂z|``. With a base density :math:`p_Z`,

.. math::

    \log p_X(x) = \log p_Z(f(x)) + \log \left|\det \frac{\partial f(x)}{\partial x}\right|,

and composing transforms :math:`f = f_K \circ \dots \circ f_1` sums their
log-determinants. Taught in the chapter *Change of variables*.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from flowcourse.validation import check_matches_module, check_tensor

__all__ = ["Transform", "Compose", "Inverse", "StandardNormal", "Flow"]


class Transform(nn.Module):
    r"""A bijection with a tractable log-determinant.

    Subclasses implement ``forward(x) -> (z, log_abs_det)`` (data to noise) and
    ``inverse(z) -> (x, log_abs_det)`` (noise to data). Both log-determinants
    have shape ``(batch,)``: the Jacobian is summed over every non-batch axis.
    """

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not implement inverse")


class Compose(Transform):
    r"""Apply transforms one after the other: :math:`f = f_K \circ \dots \circ f_1`.

    ``forward`` runs ``transforms[0]`` first and returns
    :math:`\sum_k \log|\det J_{f_k}|`; ``inverse`` runs them in reverse order.

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

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        total = check_tensor(x).new_zeros(x.shape[0])
        for transform in self.transforms:
            x, log_abs_det = transform(x)
            total = total + log_abs_det
        return x, total

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        total = check_tensor(z, "z").new_zeros(z.shape[0])
        for transform in reversed(self.transforms):
            z, log_abs_det = transform.inverse(z)
            total = total + log_abs_det
        return z, total

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

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.transform.inverse(x)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.transform(z)


class StandardNormal(nn.Module):
    r"""The base density :math:`\mathcal{N}(0, I)` over tensors of shape ``event_shape``.

    ``log_prob`` sums over the event axes and returns shape ``(batch,)``.
    Its zero buffer gives it a device and a dtype, so ``flow.to("cuda")`` moves it.
    """

    def __init__(self, event_shape: int | Sequence[int]) -> None:
        super().__init__()
        if isinstance(event_shape, int):
            event_shape = (event_shape,)
        event_shape = tuple(int(s) for s in event_shape)
        if not event_shape or any(s <= 0 for s in event_shape):
            raise ValueError(
                f"expected a non-empty event shape of positive sizes, got {event_shape}"
            )
        self.event_shape = event_shape
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

    Example:
        >>> from flowcourse.core import Compose, Flow, StandardNormal
        >>> flow = Flow(Compose(), StandardNormal(2))
        >>> flow.log_prob(torch.zeros(1, 2))
        tensor([-1.8379])
    """

    def __init__(self, transform: Transform, base: StandardNormal | nn.Module) -> None:
        super().__init__()
        if not isinstance(transform, Transform):
            raise TypeError(f"expected transform to be a Transform, got {type(transform).__name__}")
        if not (hasattr(base, "log_prob") and hasattr(base, "sample")):
            raise TypeError(
                f"expected base to have log_prob and sample methods, got {type(base).__name__}"
            )
        self.transform = transform
        self.base = base

    def _check(self, x: Tensor) -> Tensor:
        x = check_tensor(x)
        event_shape = getattr(self.base, "event_shape", None)
        if event_shape is not None and tuple(x.shape[1:]) != tuple(event_shape):
            expected = ", ".join(map(str, event_shape))
            raise ValueError(f"expected x of shape (batch, {expected}), got {tuple(x.shape)}")
        return check_matches_module(x, self)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Map data to noise: returns ``(z, log_abs_det)``."""
        return self.transform(self._check(x))

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log-density of ``x`` in nats, shape ``(batch,)``."""
        z, log_abs_det = self.forward(x)
        return self.base.log_prob(z) + log_abs_det

    def sample(self, num_samples: int, temperature: float = 1.0) -> Tensor:
        """Draw ``num_samples`` samples; ``temperature < 1`` samples nearer the mode."""
        self._check_num_samples(num_samples)
        z = self.base.sample(num_samples, temperature=temperature)
        x, _ = self.transform.inverse(z)
        return x

    def sample_and_log_prob(self, num_samples: int) -> tuple[Tensor, Tensor]:
        r"""Draw samples and their log-density in one inverse pass.

        :math:`\log p(x) = \log p_Z(z) - \log|\det \partial x/\partial z|`. The samples are
        reparametrised, so gradients of the result reach the flow's parameters (the
        reverse-KL objective of variational inference needs this).
        """
        self._check_num_samples(num_samples)
        z = self.base.sample(num_samples)
        x, log_abs_det = self.transform.inverse(z)
        return x, self.base.log_prob(z) - log_abs_det

    @staticmethod
    def _check_num_samples(num_samples: int) -> None:
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"expected num_samples to be a positive int, got {num_samples!r}")
