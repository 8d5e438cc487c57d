r"""Numerical checks of a transform or a flow, with messages a student can act on.

Each check returns a :class:`CheckResult` that is truthy when the check passes and
whose ``message`` says where and by how much a layer fails. The test suite and the
graded exercises use these same functions, so "it passes the checks" means the
same thing everywhere. Run them in float64: float32 round-off hides real bugs
behind tolerances. Each takes an optional ``context`` (one row per sample) for a
conditional layer. They are doors (see :mod:`flowcourse.validation`): ``x`` and
``context`` are checked before anything runs. Taught in the chapter *Change of variables*.

Example:
    >>> import torch
    >>> from flowcourse.core import Compose
    >>> from flowcourse.checks import check_invertible
    >>> bool(check_invertible(Compose(), torch.randn(4, 3, dtype=torch.float64)))
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from flowcourse.core import apply
from flowcourse.validation import check_tensor

__all__ = [
    "CheckResult",
    "jacobian",
    "check_invertible",
    "check_log_det",
    "check_autoregressive",
    "check_normalized",
]


@dataclass(frozen=True)
class CheckResult:
    """Outcome of a check: ``passed``, a readable ``message`` and the ``max_error`` seen."""

    passed: bool
    message: str
    max_error: float

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return ("PASS: " if self.passed else "FAIL: ") + self.message


def _default_atol(x: Tensor) -> float:
    return 1e-8 if x.dtype == torch.float64 else 1e-4


def _inputs(x: object, context: object) -> tuple[Tensor, Tensor | None]:
    """Check the points and the context once, then detach them."""
    x = check_tensor(x).detach()
    if x.dim() < 2:
        raise ValueError(f"expected x of shape (batch, ...), got {tuple(x.shape)}")
    if context is None:
        return x, None
    context = check_tensor(context, "context").detach()
    if context.dim() != 2 or context.shape[0] != x.shape[0]:
        raise ValueError(
            f"expected context of shape ({x.shape[0]}, context_features), one row per "
            f"sample of x, got {tuple(context.shape)}"
        )
    return x, context


def jacobian(transform: nn.Module, x: Tensor, context: Tensor | None = None) -> Tensor:
    r"""The Jacobian :math:`\partial z/\partial x` of ``transform.forward`` at each sample.

    Returns a tensor of shape ``(batch, D, D)`` where ``D`` is the number of values in
    one sample (images are flattened in C, H, W order). Computed one sample at a time
    with :func:`torch.autograd.functional.jacobian`, so it also works for layers whose
    output would otherwise mix samples; sample ``b`` gets context row ``b``.
    """
    x, context = _inputs(x, context)
    rows = []
    event_shape = x.shape[1:]
    for index, sample in enumerate(x):
        row_context = None if context is None else context[index : index + 1]

        def single(flat: Tensor, row_context: Tensor | None = row_context) -> Tensor:
            z, _ = apply(transform, flat.reshape(1, *event_shape), row_context)
            return z.reshape(-1)

        rows.append(torch.autograd.functional.jacobian(single, sample.reshape(-1)))
    return torch.stack(rows)


def check_invertible(
    transform: nn.Module, x: Tensor, atol: float | None = None, context: Tensor | None = None
) -> CheckResult:
    """Check ``inverse(forward(x)) == x`` and that the two log-determinants cancel."""
    x, context = _inputs(x, context)
    atol = _default_atol(x) if atol is None else atol
    with torch.no_grad():
        z, log_abs_det = apply(transform, x, context)
        x_back, log_abs_det_inverse = apply(transform.inverse, z, context)
    if x_back.shape != x.shape:
        return CheckResult(
            False, f"inverse returned shape {tuple(x_back.shape)}, expected {tuple(x.shape)}", 1e300
        )
    error = (x_back - x).abs().reshape(x.shape[0], -1).amax(dim=1)
    det_error = (log_abs_det + log_abs_det_inverse).abs()
    worst = int(error.argmax())
    max_error = float(error.max())
    max_det_error = float(det_error.max())
    scale = 1.0 + float(log_abs_det.abs().max())
    if max_error > atol * (1.0 + float(x.abs().max())):
        return CheckResult(
            False,
            f"inverse(forward(x)) differs from x by up to {max_error:.3g} "
            f"(sample {worst}; tolerance {atol:g})",
            max_error,
        )
    if max_det_error > atol * scale:
        return CheckResult(
            False,
            f"forward and inverse log-determinants do not cancel: |sum| up to "
            f"{max_det_error:.3g} at sample {int(det_error.argmax())} (tolerance {atol:g})",
            max_det_error,
        )
    return CheckResult(
        True,
        f"inverse recovers x to {max_error:.3g}; log-determinants cancel to {max_det_error:.3g}",
        max(max_error, max_det_error),
    )


def check_log_det(
    transform: nn.Module, x: Tensor, atol: float | None = None, context: Tensor | None = None
) -> CheckResult:
    """Compare the layer's ``log_abs_det`` with ``slogdet`` of the autograd Jacobian."""
    x, context = _inputs(x, context)
    atol = _default_atol(x) if atol is None else atol
    with torch.no_grad():
        _, log_abs_det = apply(transform, x, context)
    if log_abs_det.shape != (x.shape[0],):
        return CheckResult(
            False,
            f"log_abs_det has shape {tuple(log_abs_det.shape)}, expected ({x.shape[0]},)",
            1e300,
        )
    reference = torch.linalg.slogdet(jacobian(transform, x, context)).logabsdet
    error = (log_abs_det - reference).abs()
    max_error = float(error.max())
    worst = int(error.argmax())
    if max_error > atol * (1.0 + float(reference.abs().max())):
        return CheckResult(
            False,
            f"log_abs_det is {float(log_abs_det[worst]):.6g} at sample {worst} but the "
            f"autograd Jacobian gives {float(reference[worst]):.6g} "
            f"(error {max_error:.3g}, tolerance {atol:g})",
            max_error,
        )
    return CheckResult(
        True, f"log_abs_det matches the autograd Jacobian to {max_error:.3g}", max_error
    )


def check_autoregressive(
    transform: nn.Module,
    x: Tensor,
    order: Sequence[int] | Tensor,
    atol: float = 0.0,
    context: Tensor | None = None,
) -> CheckResult:
    r"""Check that output ``i`` depends only on inputs that come before it in ``order``.

    ``order[i]`` is the position of feature ``i`` in the autoregressive ordering (the MADE
    degree, from 1 to D). The Jacobian entry :math:`\partial z_i/\partial x_j` must be zero
    whenever ``order[j] > order[i]``, and the diagonal must be non-zero.
    """
    x, context = _inputs(x, context)
    order = torch.as_tensor(order, device=x.device)
    jac = jacobian(transform, x, context).abs().amax(dim=0)
    forbidden = order.reshape(1, -1) > order.reshape(-1, 1)
    leak = jac[forbidden]
    max_leak = float(leak.max()) if leak.numel() else 0.0
    if max_leak > atol:
        i, j = (jac * forbidden).nonzero()[0].tolist() if max_leak > 0 else (0, 0)
        return CheckResult(
            False,
            f"output {i} depends on input {j} (|dz_{i}/dx_{j}| = {float(jac[i, j]):.3g}) but "
            f"input {j} comes later in the ordering ({int(order[j])} > {int(order[i])})",
            max_leak,
        )
    diagonal = jac.diagonal()
    if bool((diagonal == 0).any()):
        i = int((diagonal == 0).nonzero()[0])
        return CheckResult(False, f"output {i} does not depend on input {i}: not invertible", 0.0)
    return CheckResult(True, "the Jacobian is triangular in the given ordering", max_leak)


def check_normalized(
    log_prob: nn.Module | object,
    bounds: tuple[float, float] = (-6.0, 6.0),
    resolution: int = 400,
    tolerance: float = 0.01,
    dtype: torch.dtype = torch.float64,
) -> CheckResult:
    r"""Check that a 2-D density integrates to one on the square ``bounds`` x ``bounds``.

    ``log_prob`` is a flow (anything with a ``log_prob`` method) or a function from
    ``(N, 2)`` points to ``(N,)`` log-densities. The integral is a midpoint sum on a
    ``resolution`` x ``resolution`` grid; mass outside the square counts as missing. For
    a module, the grid takes the module's own device and dtype (``dtype`` then applies
    only to plain functions): convert the module with ``.double()`` for a float64 check.
    """
    fn = getattr(log_prob, "log_prob", log_prob)
    low, high = bounds
    step = (high - low) / resolution
    axis = low + step * (0.5 + torch.arange(resolution, dtype=dtype))
    device = None
    if isinstance(log_prob, nn.Module):
        reference = next(iter(log_prob.parameters()), None)
        if reference is not None:
            device, dtype = reference.device, reference.dtype
            axis = axis.to(device=device, dtype=dtype)
    xx, yy = torch.meshgrid(axis, axis, indexing="xy")
    grid = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    with torch.no_grad():
        values = torch.cat([fn(chunk).exp() for chunk in grid.split(65536)])
    mass = float(values.sum() * step * step)
    error = abs(mass - 1.0)
    passed = error <= tolerance
    verdict = "within" if passed else "outside"
    return CheckResult(
        passed,
        f"the density integrates to {mass:.4f} on [{low}, {high}]^2 "
        f"({verdict} the tolerance {tolerance:g})",
        error,
    )
