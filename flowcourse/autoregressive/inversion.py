r"""Solving an autoregressive map for its input, one position per pass.

An autoregressive layer computes every output from its own input :math:`u_i` and the
*earlier* values :math:`u_{<i}` it conditions on. When those earlier values are the
unknowns (MAF's sampling direction, IAF's density direction), they can only be found
in order: the first position needs nothing, the second needs the first, and so on,
:math:`D` passes for :math:`D` features. Taught in the chapters *MAF* and *IAF and
variational inference*.

:func:`autoregressive_inverse` is that loop in its clearest form, for any layer.
``made_autoregressive_inverse`` is the same loop for a layer whose parameters come
from a :class:`~flowcourse.autoregressive.MADE`, doing in each pass only the work the
pass keeps; MAF's ``inverse``, IAF's and gated IAF's ``forward`` run it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from flowcourse.autoregressive.made import MADE

__all__ = ["autoregressive_inverse", "made_autoregressive_inverse"]


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
    MAF's ``inverse``, IAF's and gated IAF's ``forward`` run this loop in the faster
    form ``made_autoregressive_inverse`` (in this module), which gives the same result.

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


def made_autoregressive_inverse(
    made: MADE,
    elementwise: Callable[..., tuple[Tensor, Tensor]],
    target: Tensor,
    context: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    r""":func:`autoregressive_inverse` for a layer whose parameters a MADE computes.

    The layer maps each feature elementwise, ``elementwise(target, *parameters)`` returning
    ``(values, log_abs_det_terms)`` of the target's shape, where ``parameters`` are the
    MADE's ``k = made.output_multiplier`` outputs for those features (the chunks of
    ``made(u, context)``). The clear loop calls the MADE on the partial solution in every
    pass, maps *all* :math:`D` features and keeps one. This loop gives the same values,
    with less work per pass:

    - the weights are masked once per call, not once per pass;
    - pass :math:`t` asks the MADE only for the :math:`k` outputs of the feature ``i``
      at position :math:`t` (``made(u, context, feature=i)``: :math:`k` rows of the last
      layer instead of :math:`kD`), and maps only that column, shape ``(batch,)``;
    - it adds the column's log-determinant term to the total once, when the column is
      solved: the term reads only earlier positions, so it is final then;
    - without autograd recording (sampling, or scoring under ``torch.no_grad()``) it
      writes column ``i`` of the solution in place;
    - when autograd records (IAF training, or any call outside ``torch.no_grad()``), it
      may not write in place, and copying the whole partial solution every pass
      (``index_copy``) made training slow. So it keeps the first hidden layer's
      pre-activation :math:`(W_1 \odot M_1) u + b_1` from pass to pass instead: solving
      feature :math:`i` changes one input, which adds :math:`u_i` times column
      :math:`i` of the masked weight (an outer product), and the MADE reads only that.
      The solved columns are stacked into the solution once, at the end.

    Each pass still runs the hidden layers on the whole partial solution, so the MADE is
    called once per pass, :math:`D` calls in all, as in the clear loop. The result equals
    :func:`autoregressive_inverse` up to round-off (the log-determinant, and with
    autograd the first layer's sums, are added in the order of positions).

    Example:
        >>> from flowcourse.autoregressive import MADE
        >>> made = MADE(3, hidden_features=8, output_multiplier=1, zero_init_last=False)
        >>> def shift(target, mu):  # u_i = target_i + mu_i(u_<i), log|det| = 0
        ...     return target + mu, torch.zeros_like(target)
        >>> target = torch.randn(4, 3)
        >>> fast, _ = made_autoregressive_inverse(made, shift, target)
        >>> clear, _ = autoregressive_inverse(
        ...     lambda u: (target + made(u), torch.zeros(4)), target, made.order
        ... )
        >>> torch.allclose(fast, clear, atol=1e-6)
        True
    """
    weights = made.masked_weights()
    by_position = torch.argsort(made.order).tolist()  # the features in the order solved
    if torch.is_grad_enabled():
        return _solve_recorded(made, elementwise, target, context, weights, by_position)
    solution = torch.zeros_like(target)
    log_abs_det = target.new_zeros(target.shape[0])
    for feature in by_position:
        parameters = made(solution, context, feature=feature, weights=weights)
        values, log_abs_det_terms = elementwise(target[:, feature], *parameters.unbind(dim=1))
        solution[:, feature] = values
        log_abs_det = log_abs_det + log_abs_det_terms
    return solution, log_abs_det


def _solve_recorded(
    made: MADE,
    elementwise: Callable[..., tuple[Tensor, Tensor]],
    target: Tensor,
    context: Tensor | None,
    weights: list[tuple[Tensor, Tensor]],
    by_position: list[int],
) -> tuple[Tensor, Tensor]:
    """The loop of ``made_autoregressive_inverse`` while autograd records: out of place,
    with the first layer's pre-activation updated by one column per pass."""
    first_weight, first_bias = weights[0]
    first_weight_columns = first_weight.unbind(dim=1)
    # The partial solution starts at zero, so the first layer starts at its bias.
    first_layer = first_bias.expand(target.shape[0], -1)
    if made.context_layer is not None:
        first_layer = first_layer + F.linear(context, made.context_layer.weight)
    solved: list[Tensor] = [target[:, 0]] * made.features  # each replaced when solved
    log_abs_det = target.new_zeros(target.shape[0])
    for feature in by_position:
        # Given first_layer, the MADE does not read its input: the target stands in for
        # the partial solution only because it has the same shape (for the checks).
        parameters = made(
            target, context, feature=feature, weights=weights, first_layer=first_layer
        )
        values, log_abs_det_terms = elementwise(target[:, feature], *parameters.unbind(dim=1))
        solved[feature] = values
        first_layer = torch.addr(first_layer, values, first_weight_columns[feature])
        log_abs_det = log_abs_det + log_abs_det_terms
    return torch.stack(solved, dim=1), log_abs_det
