r"""Solving an autoregressive map for its input, one position per pass.

An autoregressive layer computes every output from its own input :math:`u_i` and the
*earlier* values :math:`u_{<i}` it conditions on. When those earlier values are the
unknowns (MAF's sampling direction, IAF's density direction), they can only be found
in order: the first position needs nothing, the second needs the first, and so on,
:math:`D` passes for :math:`D` features. Taught in the chapters *MAF* and *IAF and
variational inference*.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["autoregressive_inverse"]


def autoregressive_inverse(
    step: Callable[[Tensor], tuple[Tensor, Tensor]], target: Tensor, order: Tensor
) -> tuple[Tensor, Tensor]:
    r"""Solve for the input of an autoregressive map, one position of ``order`` per pass.

    ``step(u)`` takes a partial solution whose features at positions :math:`< t` are final
    and returns ``(values, log_abs_det)``: for every feature, the value the layer's
    parameters *at u* give (for ``target``, which the step knows), and the
    log-determinant of that pass. Pass :math:`t` keeps the value of the feature at
    position :math:`t` (``order`` holds each feature's position, 1 to :math:`D`); its
    parameters read only earlier, already final, positions, so the value is final too.
    Later positions stay 0 until their turn: rewriting them every pass would feed the
    network values computed from garbage, which can grow with every pass. The last
    pass reads every position but the last one, so its log-determinant is the final one.
    MAF's ``inverse``, IAF's and gated IAF's ``forward`` all run this loop.

    Example:
        >>> # x_1 = z_1, x_2 = z_2 + x_1: solve for x given z = (1, 1) in two passes.
        >>> z = torch.tensor([[1.0, 1.0]])
        >>> def step(x):
        ...     return z + torch.cat([torch.zeros(1, 1), x[:, :1]], dim=1), torch.zeros(1)
        >>> autoregressive_inverse(step, z, order=torch.tensor([1, 2]))[0]
        tensor([[1., 2.]])
    """
    solution = torch.zeros_like(target)
    log_abs_det = target.new_zeros(target.shape[0])
    for position in range(1, len(order) + 1):
        values, log_abs_det = step(solution)
        solution = torch.where(order == position, values, solution)
    return solution, log_abs_det
