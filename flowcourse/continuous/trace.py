r"""The divergence of a velocity field: exactly, or by Hutchinson's estimator.

A continuous flow needs :math:`\operatorname{div} v = \operatorname{tr}\,\partial v/\partial z`
at every step of its ODE. Written with the standard basis :math:`e_1, \dots, e_D`,

.. math::

    \operatorname{tr} J = \sum_{i=1}^{D} e_i^\top J e_i
    \qquad\text{and}\qquad
    \operatorname{tr} J = \mathbb{E}_\varepsilon\big[\varepsilon^\top J \varepsilon\big]
    \quad\text{when } \mathbb{E}[\varepsilon\varepsilon^\top] = I.

Each :math:`\varepsilon^\top J` is one vector-Jacobian product, one backward pass. The
exact sum takes :math:`D` of them (batched into one call here, but :math:`D` times the
work); Hutchinson's (1989) estimator takes one per random
probe :math:`\varepsilon` and is unbiased, which is what FFJORD (Grathwohl et al. 2019)
uses to scale continuous flows to images. Its variance for :math:`n` probes, with
:math:`S = (J + J^\top)/2`, is

.. math::

    \frac{2}{n}\Big(\lVert S\rVert_F^2 - \sum_i S_{ii}^2\Big) \ \text{(Rademacher)},
    \qquad
    \frac{2}{n}\lVert S\rVert_F^2 \ \text{(Gaussian)}.

Both functions take ``velocity_at``, a function of the position alone (bind the time
first), and return the velocity with its divergence, shape ``(batch,)``. They work
under ``torch.no_grad()`` too (they switch gradients on inside); the divergence is
itself differentiable when gradients are enabled at the call. Samples must not
interact (no batch norm): the batch is summed before each backward pass.
Taught in the chapter *Continuous-time flows and flow matching*.

Example:
    >>> import torch
    >>> A = torch.tensor([[1.0, 2.0], [0.5, -3.0]])
    >>> _, divergence = exact_divergence(lambda z: z @ A.T, torch.randn(4, 2))
    >>> divergence  # tr A = -2 everywhere
    tensor([-2., -2., -2., -2.])
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from flowcourse.validation import check_positive_int, check_tensor

__all__ = [
    "Probe",
    "rademacher",
    "gaussian",
    "exact_divergence",
    "hutchinson_divergence",
]

Probe = Callable[[Tensor, torch.Generator | None], Tensor]
"""A function ``probe(like, generator)`` that returns random vectors shaped like ``like``,
with :math:`\\mathbb{E}[\\varepsilon\\varepsilon^\\top] = I`."""


def rademacher(like: Tensor, generator: torch.Generator | None = None) -> Tensor:
    r"""Entries :math:`\pm 1` with probability :math:`\frac12` each, shaped like ``like``."""
    bits = torch.randint(0, 2, like.shape, generator=generator, device=like.device)
    return (2 * bits - 1).to(like.dtype)


def gaussian(like: Tensor, generator: torch.Generator | None = None) -> Tensor:
    r"""Entries :math:`\mathcal{N}(0, 1)`, shaped like ``like``."""
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


def _velocity_with_graph(
    velocity_at: Callable[[Tensor], Tensor], z: Tensor
) -> tuple[Tensor, Tensor]:
    """``(z, v)`` with ``v = velocity_at(z)`` differentiable with respect to ``z``."""
    z = check_tensor(z, "z")
    if z.dim() != 2:
        raise ValueError(f"expected z of shape (batch, features), got {tuple(z.shape)}")
    if not z.requires_grad:
        z = z.detach().requires_grad_(True)
    v = velocity_at(z)
    if not isinstance(v, Tensor) or v.shape != z.shape:
        got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
        raise ValueError(
            f"expected the velocity to have the shape of z, {tuple(z.shape)}, got {got}"
        )
    return z, v


def _vjp(
    v: Tensor, z: Tensor, vectors: Tensor, create_graph: bool, batched: bool = False
) -> Tensor:
    """``vector^T dv/dz`` for every sample (for each leading vector if ``batched``); zero
    where ``v`` does not depend on ``z``."""
    if not v.requires_grad:
        return torch.zeros_like(vectors)
    (product,) = torch.autograd.grad(
        v,
        z,
        vectors,
        create_graph=create_graph,
        retain_graph=True,
        allow_unused=True,
        is_grads_batched=batched,
    )
    return torch.zeros_like(vectors) if product is None else product


def exact_divergence(velocity_at: Callable[[Tensor], Tensor], z: Tensor) -> tuple[Tensor, Tensor]:
    r"""The velocity :math:`v(z)` and its exact divergence :math:`\sum_i e_i^\top J e_i`.

    The :math:`D` vector-Jacobian products :math:`e_i^\top J` (the rows of :math:`J`) run
    as one batched backward pass (``is_grads_batched``, vectorised by ``torch.vmap``); the
    work and the memory still grow like :math:`D` times one backward pass. Fine for the
    book's 2-D densities and the 64 pixels of the digits; for large images use
    :func:`hutchinson_divergence`.

    Returns:
        ``(v, divergence)`` of shapes ``(batch, D)`` and ``(batch,)``.
    """
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        z, v = _velocity_with_graph(velocity_at, z)
        batch, features = z.shape
        # basis[i] holds e_i for every sample; rows[i, b] = e_i^T J at sample b.
        basis = torch.eye(features, dtype=z.dtype, device=z.device)[:, None, :]
        rows = _vjp(v, z, basis.expand(features, batch, features), create_graph, batched=True)
        divergence = rows.diagonal(dim1=0, dim2=2).sum(dim=1)  # sum_i dv_i/dz_i
    if not create_graph:
        return v.detach(), divergence.detach()
    return v, divergence


def hutchinson_divergence(
    velocity_at: Callable[[Tensor], Tensor],
    z: Tensor,
    num_probes: int = 1,
    probe: Probe = rademacher,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    r"""The velocity and an unbiased estimate of its divergence, averaged over probes.

    .. math::

        \widehat{\operatorname{div}}\, v = \frac{1}{n}\sum_{k=1}^{n}
        \varepsilon_k^\top \frac{\partial v}{\partial z}\, \varepsilon_k,
        \qquad \varepsilon_k \sim \text{probe},

    one backward pass per probe, whatever the dimension (Hutchinson 1989; FFJORD,
    Grathwohl et al. 2019). Each sample of the batch gets its own probes.

    Returns:
        ``(v, estimate)`` of shapes ``(batch, D)`` and ``(batch,)``.
    """
    check_positive_int(num_probes, "num_probes")
    if not callable(probe):
        raise TypeError(
            f"expected probe to be a function like rademacher, got {type(probe).__name__}"
        )
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        z, v = _velocity_with_graph(velocity_at, z)
        total = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        for _ in range(num_probes):
            epsilon = probe(v, generator)
            epsilon_jacobian = _vjp(v, z, epsilon, create_graph)
            total = total + (epsilon_jacobian * epsilon).sum(dim=1)
        estimate = total / num_probes
    if not create_graph:
        return v.detach(), estimate.detach()
    return v, estimate
