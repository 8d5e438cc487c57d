r"""MADE: a masked MLP whose outputs are autoregressive in its inputs.

Germain et al. (2015), *MADE: Masked Autoencoder for Distribution Estimation*.
Taught in the chapter *MADE*.

Every unit gets a **degree**. Input :math:`i` has degree :math:`m(i) = \text{order}_i`, a
position from 1 to :math:`D`. A hidden unit of degree :math:`m` may see the units of the
previous layer with degree :math:`\le m`, and output :math:`i` may see the last hidden
units with degree :math:`< m(i)`. Multiplying the weights by these 0/1 masks makes output
:math:`i` a function of exactly the inputs that come before input :math:`i` in the
ordering:

.. math::

    \frac{\partial\, \text{out}_i}{\partial x_j} = 0 \quad \text{whenever} \quad m(j) \ge m(i).

**Hidden degrees.** The paper samples each hidden degree at random in
:math:`[\min m_{\text{previous}}, D-1]`. Here they are assigned cyclically,
:math:`1, 2, \dots, D-1, 1, 2, \dots`, which is deterministic, leaves no unit dead and
puts every degree in every layer once a layer has at least :math:`D-1` units. That
width is required: then output :math:`i` has a path from *every* input before it, so
the network can represent the full conditionals :math:`p(x_i \mid x_{<i})`.

**Context.** A conditioning input (the IAF posterior's :math:`h`, a class label) has
degree 0: every first-layer unit sees it. The output that comes first in the ordering
may only see units of degree 0, so with a context the hidden degrees cycle through
:math:`0, 1, \dots, D-1` (degree-0 units see the context and no input), and each hidden
layer needs :math:`D` units. Without them the first output could not depend on the
context at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from flowcourse.seeding import seeded
from flowcourse.validation import (
    check_context,
    check_features,
    check_int,
    check_matches_module,
    check_positive_int,
    validated,
)

__all__ = ["MaskedLinear", "MADE", "natural_order", "random_order", "hidden_degrees"]


def natural_order(features: int) -> Tensor:
    """The ordering :math:`1, 2, \\dots, D`: feature ``i`` comes at position ``i + 1``.

    Example:
        >>> natural_order(3)
        tensor([1, 2, 3])
    """
    check_positive_int(features, "features")
    return torch.arange(1, features + 1)


def random_order(features: int, seed: int) -> Tensor:
    """A random permutation of :math:`1, \\dots, D`, reproducible from ``seed``.

    Example:
        >>> sorted(random_order(4, seed=0).tolist())
        [1, 2, 3, 4]
    """
    check_positive_int(features, "features")
    generator = torch.Generator().manual_seed(check_int(seed, "seed"))
    return torch.randperm(features, generator=generator) + 1


def hidden_degrees(width: int, features: int, lowest: int = 1) -> Tensor:
    r"""Degrees :math:`l, l+1, \dots, D-1, l, \dots` of a hidden layer with ``width`` units.

    ``lowest`` is :math:`l = 1` for a plain MADE and 0 for one with a context (degree-0
    units see only the context). With a single feature and no context there is nothing to
    condition on, so every unit gets degree 0 and the output depends only on biases.

    Example:
        >>> hidden_degrees(5, features=3)
        tensor([1, 2, 1, 2, 1])
        >>> hidden_degrees(5, features=3, lowest=0)
        tensor([0, 1, 2, 0, 1])
    """
    lowest = min(lowest, features - 1)
    return torch.arange(width) % (features - lowest) + lowest


class MaskedLinear(nn.Linear):
    r"""A linear layer with a fixed 0/1 mask on its weight: :math:`y = (W \odot M) x + b`.

    The mask is a registered buffer of shape ``(out_features, in_features)``, so it
    moves with ``.to(device)`` and survives a ``state_dict`` round trip.
    Part of MADE (Germain et al., 2015); taught in the chapter *MADE*.

    Example:
        >>> layer = MaskedLinear(2, 2, mask=torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
        >>> layer(torch.zeros(3, 2)).shape
        torch.Size([3, 2])
    """

    def __init__(self, in_features: int, out_features: int, mask: Tensor) -> None:
        super().__init__(in_features, out_features)
        if not isinstance(mask, Tensor) or tuple(mask.shape) != (out_features, in_features):
            given = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(f"expected mask of shape ({out_features}, {in_features}), got {given}")
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    r"""A masked MLP whose outputs are autoregressive in its inputs (Germain et al., 2015).

    For ``features`` :math:`= D` inputs it returns ``output_multiplier`` :math:`= k` values
    per input, shape ``(batch, k * D)``, laid out parameter-major: ``out.reshape(B, k, D)``
    (equivalently ``out.chunk(k, dim=1)``) gives the :math:`k` parameters, each of shape
    ``(batch, D)``, and all of them for feature :math:`i` depend only on the inputs
    :math:`x_j` with ``order[j] < order[i]``.

    Hidden degrees are assigned cyclically (see the module docstring), so every hidden
    layer needs at least :math:`D - 1` units; a narrower layer raises ``ValueError``.
    An optional ``context`` of shape ``(batch, context_features)`` feeds every unit of
    the first hidden layer, and hidden units of degree 0 carry it to every output,
    including the first in the ordering (the IAF posterior of Kingma et al. (2016)
    needs this); with a context each hidden layer needs :math:`D` units.

    ``made.masks`` lists the masks (input to hidden, ..., hidden to output) and
    ``made.degrees`` the degrees of the inputs, of each hidden layer and of the outputs,
    for drawing the connectivity. ``seed`` makes the initial weights reproducible
    without touching the global random state. The last layer starts at zero
    (``zero_init_last``), so flows built on a fresh MADE start as the identity.
    Taught in the chapter *MADE*.

    Example:
        >>> made = MADE(3, hidden_features=8, output_multiplier=2)
        >>> made(torch.randn(5, 3)).shape
        torch.Size([5, 6])
        >>> [tuple(mask.shape) for mask in made.masks]
        [(8, 3), (8, 8), (6, 8)]
    """

    def __init__(
        self,
        features: int,
        hidden_features: int | Sequence[int] = 64,
        num_hidden_layers: int | None = None,
        output_multiplier: int = 1,
        order: Tensor | Sequence[int] | None = None,
        seed: int = 0,
        context_features: int = 0,
        activation: Callable[[], nn.Module] = nn.ReLU,
        zero_init_last: bool = True,
    ) -> None:
        super().__init__()
        check_positive_int(features, "features")
        check_positive_int(output_multiplier, "output_multiplier")
        check_int(context_features, "context_features", 0)
        widths = _hidden_widths(hidden_features, num_hidden_layers)
        # Degree-0 hidden units carry the context to the output that comes first.
        self.lowest_hidden_degree = 0 if context_features else 1
        needed = max(features - self.lowest_hidden_degree, 1)
        for index, width in enumerate(widths):
            if width < needed:
                raise ValueError(
                    f"expected every hidden layer of a MADE over {features} features "
                    f"{'with' if context_features else 'without'} context to have at least "
                    f"{needed} units (so that each output has a path from every input before "
                    f"it), got {width} in hidden layer {index}; widen it"
                )
        self.features = features
        self.output_multiplier = output_multiplier
        self.context_features = context_features
        self.hidden_widths = tuple(widths)
        self.register_buffer("order", _check_order(order, features))

        # seed fixes the weights; the callers' random state is put back afterwards.
        with seeded(seed):
            sizes = [features, *widths, output_multiplier * features]
            masks = self._masks(self.order)
            self.layers = nn.ModuleList(
                MaskedLinear(n_in, n_out, mask)
                for n_in, n_out, mask in zip(sizes[:-1], sizes[1:], masks, strict=True)
            )
            self.context_layer = (
                nn.Linear(context_features, widths[0], bias=False) if context_features else None
            )
        self.activations = nn.ModuleList(activation() for _ in widths)
        if zero_init_last:
            nn.init.zeros_(self.layers[-1].weight)
            nn.init.zeros_(self.layers[-1].bias)

    @property
    def masks(self) -> list[Tensor]:
        """The 0/1 masks, input to first hidden layer first, each ``(out, in)``."""
        return [layer.mask for layer in self.layers]

    @property
    def degrees(self) -> list[Tensor]:
        """Degrees of the inputs (the ordering), of each hidden layer and of the outputs."""
        hidden = [self._hidden_degrees(width) for width in self.hidden_widths]
        outputs = self.order.repeat(self.output_multiplier)
        return [self.order.clone(), *[d.to(self.order.device) for d in hidden], outputs]

    def _hidden_degrees(self, width: int) -> Tensor:
        return hidden_degrees(width, self.features, self.lowest_hidden_degree)

    def _masks(self, order: Tensor) -> list[Tensor]:
        degrees = [order.cpu()] + [self._hidden_degrees(w) for w in self.hidden_widths]
        masks = [
            (after.reshape(-1, 1) >= before.reshape(1, -1)).float()
            for before, after in zip(degrees[:-1], degrees[1:], strict=True)
        ]
        # Outputs use a strict inequality: output i must not see input i itself.
        outputs = order.cpu().repeat(self.output_multiplier)
        masks.append((outputs.reshape(-1, 1) > degrees[-1].reshape(1, -1)).float())
        return masks

    def set_order(self, order: Tensor | Sequence[int]) -> None:
        """Use a new ordering (a permutation of ``1..D``); the weights are kept."""
        order = _check_order(order, self.features)
        with torch.no_grad():
            self.order.copy_(order)
            for layer, mask in zip(self.layers, self._masks(order), strict=True):
                layer.mask.copy_(mask)

    def resample_order(self, seed: int) -> Tensor:
        """Switch to ``random_order(D, seed)`` (order-agnostic training) and return it."""
        order = random_order(self.features, seed)
        self.set_order(order)
        return order

    def masked_weights(self) -> list[tuple[Tensor, Tensor]]:
        r"""Every layer's masked weight :math:`W \odot M` and its bias, input layer first."""
        return [(layer.weight * layer.mask, layer.bias) for layer in self.layers]

    @validated
    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        *,
        feature: int | None = None,
        weights: Sequence[tuple[Tensor, Tensor]] | None = None,
        first_layer: Tensor | None = None,
    ) -> Tensor:
        r"""Return the ``(batch, output_multiplier * features)`` autoregressive outputs.

        With ``feature=i``, return only the ``output_multiplier`` outputs of feature
        ``i``, shape ``(batch, output_multiplier)``: columns ``i, D + i, ...`` of the full
        output, computed from those rows of the last layer alone. A pass of the
        :math:`D`-pass loop keeps nothing else
        (``made_autoregressive_inverse`` in ``flowcourse.autoregressive.inversion``).
        ``weights`` are :meth:`~flowcourse.autoregressive.MADE.masked_weights`, for a
        caller that makes many passes and masks the weights once; by default they are
        masked in this call. ``first_layer`` is the first hidden layer's pre-activation
        for ``x`` (:math:`(W_1 \odot M_1) x + b_1`, plus the context's term), for a caller
        that already has it: the :math:`D`-pass loop changes one input per pass and
        updates it by one column instead of multiplying ``x`` again. With it, ``x`` and
        ``context`` are not read (``x`` is only checked, when the MADE is called on its
        own or under ``set_validation(True)``), and ``first_layer`` is left unchanged,
        also by an in-place activation.
        """
        # The layers' arithmetic (MaskedLinear.forward) without one module call per layer.
        if weights is None:
            weights = self.masked_weights()
        if feature is not None:
            last_weight, last_bias = weights[-1]
            rows = slice(feature, None, self.features)  # feature i's outputs: i, D + i, ...
            weights = [*weights[:-1], (last_weight[rows], last_bias[rows])]
        if first_layer is not None:
            # The caller keeps first_layer for its next pass: an in-place activation
            # (inplace=True) must not write into it.
            in_place = getattr(self.activations[0], "inplace", False)
            hidden = first_layer.clone() if in_place else first_layer
        else:
            hidden = F.linear(x, *weights[0])
            if self.context_layer is not None:
                hidden = hidden + F.linear(context, self.context_layer.weight)
        for activation, (weight, bias) in zip(self.activations, weights[1:], strict=True):
            hidden = F.linear(_activate(activation, hidden), weight, bias)
        return hidden

    def check_input(self, x: object, inverse: bool = False, context: Tensor | None = None) -> None:
        """Called directly, a MADE checks ``x`` and ``context`` (inside a layer it does not)."""
        x = check_matches_module(check_features(x, self.features), self)
        check_context(context, self.context_features, x.shape[0], self)


def _activate(activation: nn.Module, hidden: Tensor) -> Tensor:
    # A plain ReLU is applied as the function: the same values, without a module call.
    return torch.relu(hidden) if type(activation) is nn.ReLU else activation(hidden)


def _hidden_widths(
    hidden_features: int | Sequence[int], num_hidden_layers: int | None
) -> list[int]:
    if isinstance(hidden_features, int) and not isinstance(hidden_features, bool):
        count = 2 if num_hidden_layers is None else num_hidden_layers
        check_positive_int(count, "num_hidden_layers")
        widths = [hidden_features] * count
    elif isinstance(hidden_features, Sequence) and not isinstance(hidden_features, str):
        widths = list(hidden_features)
        if num_hidden_layers is not None and num_hidden_layers != len(widths):
            raise ValueError(
                f"expected num_hidden_layers to match the {len(widths)} widths in "
                f"hidden_features, got {num_hidden_layers}"
            )
    else:
        kind = type(hidden_features).__name__
        raise TypeError(f"expected hidden_features to be an int or a sequence of ints, got {kind}")
    if not widths:
        raise ValueError("expected at least one hidden layer, got none")
    for width in widths:
        check_positive_int(width, "every hidden width")
    return widths


def _check_order(order: Tensor | Sequence[int] | None, features: int) -> Tensor:
    if order is None:
        return natural_order(features)
    order = torch.as_tensor(order).detach().cpu()
    if order.is_floating_point() or order.dtype == torch.bool:
        raise TypeError(f"expected order to hold integers, got dtype {order.dtype}")
    order = order.long()
    if order.shape != (features,) or not torch.equal(order.sort().values, natural_order(features)):
        raise ValueError(
            f"expected order to be a permutation of 1..{features}, got {order.tolist()}"
        )
    return order
