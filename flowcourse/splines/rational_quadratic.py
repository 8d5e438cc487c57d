r"""Monotone rational-quadratic splines: the 1-D bijection of neural spline flows.

Durkan et al. (2019), *Neural Spline Flows*, after Gregory & Delbourgo (1982).
Taught in the chapter *Neural spline flows*.

On :math:`[-B, B]` the spline passes through :math:`K + 1` knots
:math:`(x^{(k)}, y^{(k)})`, from :math:`(-B, -B)` to :math:`(B, B)`, with positive
derivatives :math:`\delta^{(k)}` at the knots; outside :math:`[-B, B]` it is the identity.
In bin :math:`k`, with width :math:`w = x^{(k+1)} - x^{(k)}`, height
:math:`h = y^{(k+1)} - y^{(k)}`, slope :math:`s = h / w` and
:math:`\theta = (x - x^{(k)}) / w \in [0, 1]`,

.. math::

    y = y^{(k)} + \frac{h\,\big[s\theta^2 + \delta^{(k)}\theta(1-\theta)\big]}
                       {s + \big[\delta^{(k+1)} + \delta^{(k)} - 2s\big]\theta(1-\theta)},

    \frac{dy}{dx} = \frac{s^2\big[\delta^{(k+1)}\theta^2 + 2s\theta(1-\theta)
                          + \delta^{(k)}(1-\theta)^2\big]}
                         {\big(s + \big[\delta^{(k+1)} + \delta^{(k)} - 2s\big]
                          \theta(1-\theta)\big)^2} > 0.

The inverse solves a quadratic :math:`a\theta^2 + b\theta + c = 0` for :math:`\theta`
(see :func:`rational_quadratic_spline`). The knots come from unconstrained numbers (a
conditioner's outputs) through :func:`spline_knots`: a softmax for the widths and the
heights, a softplus for the derivatives.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn import functional as F

from flowcourse.validation import at_door, check_positive_float, check_tensor

__all__ = [
    "DEFAULT_MIN_BIN_WIDTH",
    "DEFAULT_MIN_BIN_HEIGHT",
    "DEFAULT_MIN_DERIVATIVE",
    "Knots",
    "spline_parameter_count",
    "unpack_spline_parameters",
    "spline_knots",
    "rational_quadratic_bin",
    "rational_quadratic_spline",
]

#: Smallest bin width, as a fraction of :math:`2B`, so that every bin stays resolvable.
DEFAULT_MIN_BIN_WIDTH = 1e-3
#: Smallest bin height, as a fraction of :math:`2B`.
DEFAULT_MIN_BIN_HEIGHT = 1e-3
#: Smallest derivative at an inner knot, so that the spline stays strictly increasing.
DEFAULT_MIN_DERIVATIVE = 1e-3


class Knots(NamedTuple):
    """The knots of a spline: ``x`` and ``y`` of shape ``(..., K + 1)``, increasing from
    :math:`-B` to :math:`B`, and the ``derivatives`` there, shape ``(..., K + 1)``, positive
    (1 at both ends, where the spline meets the identity tails)."""

    x: Tensor
    y: Tensor
    derivatives: Tensor


def spline_parameter_count(num_bins: int) -> int:
    """Raw numbers per spline of ``num_bins`` bins: :math:`K` widths, :math:`K` heights and
    :math:`K - 1` inner derivatives, :math:`3K - 1` in all.

    Example:
        >>> spline_parameter_count(8)
        23
    """
    return 3 * num_bins - 1


def unpack_spline_parameters(
    params: Tensor, features: int, num_bins: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Split a conditioner's ``(batch, (3K - 1) * features)`` output into the raw widths,
    heights and derivatives, of shapes ``(batch, features, K)``, ``(batch, features, K)``
    and ``(batch, features, K - 1)``.

    The layout is parameter-major, as a MADE lays out its outputs:
    ``params.reshape(batch, 3K - 1, features)[:, :, i]`` are the numbers of feature ``i``.

    Example:
        >>> widths, heights, derivatives = unpack_spline_parameters(torch.zeros(2, 46), 2, 8)
        >>> widths.shape, derivatives.shape
        (torch.Size([2, 2, 8]), torch.Size([2, 2, 7]))
    """
    per_feature = params.reshape(params.shape[0], spline_parameter_count(num_bins), features)
    per_feature = per_feature.transpose(1, 2)
    widths, heights, derivatives = per_feature.split([num_bins, num_bins, num_bins - 1], dim=-1)
    return widths, heights, derivatives


def _check_minimum(value: object, name: str, num_bins: int) -> float:
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or not 0 <= value or value * num_bins >= 1:
        raise ValueError(
            f"expected {name} in [0, 1/num_bins) = [0, {1 / num_bins:.3g}) "
            f"for {num_bins} bins, got {value!r}"
        )
    return float(value)


def _cumulative_knots(fractions: Tensor, bound: float) -> Tensor:
    """Knots at :math:`-B + 2B \\sum_{j<k} \\text{fraction}_j`, ends exactly at :math:`\\pm B`."""
    knots = F.pad(torch.cumsum(fractions, dim=-1), (1, 0), value=0.0)
    knots = 2 * bound * knots - bound
    # The cumulative sum ends at 1 only up to round-off; pin both ends.
    knots[..., 0] = -bound
    knots[..., -1] = bound
    return knots


def spline_knots(
    raw_widths: Tensor,
    raw_heights: Tensor,
    raw_derivatives: Tensor,
    bound: float = 3.0,
    min_bin_width: float = DEFAULT_MIN_BIN_WIDTH,
    min_bin_height: float = DEFAULT_MIN_BIN_HEIGHT,
    min_derivative: float = DEFAULT_MIN_DERIVATIVE,
) -> Knots:
    r"""Knots of a monotone spline on :math:`[-B, B]` from unconstrained numbers.

    With :math:`K` bins (``raw_widths`` and ``raw_heights`` of shape ``(..., K)``,
    ``raw_derivatives`` of shape ``(..., K - 1)``, one per inner knot):

    .. math::

        w_k = 2B\,\big[m_w + (1 - K m_w)\,\mathrm{softmax}(\tilde w)_k\big], \qquad
        h_k = 2B\,\big[m_h + (1 - K m_h)\,\mathrm{softmax}(\tilde h)_k\big],

        \delta^{(k)} = m_\delta + \mathrm{softplus}\big(\tilde\delta_k + c\big), \quad
        c = \log\big(e^{1 - m_\delta} - 1\big),

    so the widths and heights are positive and add up to :math:`2B`, and every
    derivative is above :math:`m_\delta`. The shift :math:`c` makes a zero
    :math:`\tilde\delta` give :math:`\delta = 1`: all-zero raw numbers give equal bins and
    unit derivatives, which is the identity map (a fresh layer starts as the identity).
    The derivatives at :math:`\pm B` are 1, so the spline joins its identity tails with
    a continuous slope (Durkan et al. 2019).

    Example:
        >>> knots = spline_knots(torch.zeros(4), torch.zeros(4), torch.zeros(3), bound=2.0)
        >>> knots.x
        tensor([-2., -1.,  0.,  1.,  2.])
        >>> torch.allclose(knots.derivatives, torch.ones(5))  # 1 up to round-off
        True
    """
    if at_door():  # called on its own; inside a layer, the layer checked its input
        _check_spline_arguments(
            raw_widths,
            raw_heights,
            raw_derivatives,
            bound,
            min_bin_width,
            min_bin_height,
            min_derivative,
        )
    bound = float(bound)
    num_bins = raw_widths.shape[-1]
    widths = min_bin_width + (1 - min_bin_width * num_bins) * torch.softmax(raw_widths, dim=-1)
    heights = min_bin_height + (1 - min_bin_height * num_bins) * torch.softmax(raw_heights, dim=-1)
    shift = math.log(math.expm1(1 - min_derivative))
    inner = min_derivative + F.softplus(raw_derivatives + shift)
    derivatives = F.pad(inner, (1, 1), value=1.0)
    return Knots(_cumulative_knots(widths, bound), _cumulative_knots(heights, bound), derivatives)


def _check_spline_arguments(
    raw_widths: object,
    raw_heights: object,
    raw_derivatives: object,
    bound: object,
    min_bin_width: object,
    min_bin_height: object,
    min_derivative: object,
) -> None:
    check_positive_float(bound, "bound")
    raw_widths = check_tensor(raw_widths, "raw_widths")
    raw_heights = check_tensor(raw_heights, "raw_heights")
    raw_derivatives = check_tensor(raw_derivatives, "raw_derivatives")
    if raw_widths.dim() == 0 or raw_widths.shape[-1] < 1:
        raise ValueError(
            f"expected raw_widths of shape (..., num_bins) with num_bins >= 1, "
            f"got {tuple(raw_widths.shape)}"
        )
    num_bins = raw_widths.shape[-1]
    batch_shape = tuple(raw_widths.shape[:-1])
    expected = {
        "raw_heights": (raw_heights, (*batch_shape, num_bins)),
        "raw_derivatives": (raw_derivatives, (*batch_shape, num_bins - 1)),
    }
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(
                f"expected {name} of shape {shape} to go with raw_widths of shape "
                f"{tuple(raw_widths.shape)} ({num_bins} bins, {num_bins - 1} inner knots), "
                f"got {tuple(tensor.shape)}"
            )
        if tensor.dtype != raw_widths.dtype or tensor.device != raw_widths.device:
            raise TypeError(
                f"expected {name} of the dtype and device of raw_widths ({raw_widths.dtype} "
                f"on {raw_widths.device}), got {tensor.dtype} on {tensor.device}"
            )
    _check_minimum(min_bin_width, "min_bin_width", num_bins)
    _check_minimum(min_bin_height, "min_bin_height", num_bins)
    is_number = isinstance(min_derivative, (int, float)) and not isinstance(min_derivative, bool)
    if not is_number or not 0 <= min_derivative < 1:
        raise ValueError(f"expected min_derivative in [0, 1), got {min_derivative!r}")


def rational_quadratic_bin(
    x: Tensor,
    x_left: Tensor,
    x_right: Tensor,
    y_left: Tensor,
    y_right: Tensor,
    derivative_left: Tensor,
    derivative_right: Tensor,
) -> tuple[Tensor, Tensor]:
    r"""The spline in one bin :math:`[x^{(k)}, x^{(k+1)}]`: returns ``(y, log dy/dx)``.

    With :math:`w = x^{(k+1)} - x^{(k)}`, :math:`h = y^{(k+1)} - y^{(k)}`,
    :math:`s = h/w` and :math:`\theta = (x - x^{(k)})/w`,

    .. math::

        y = y^{(k)} + \frac{h\,[s\theta^2 + \delta^{(k)}\theta(1-\theta)]}
                           {s + [\delta^{(k+1)} + \delta^{(k)} - 2s]\,\theta(1-\theta)},

        \log\frac{dy}{dx} = 2\log s
            + \log\big[\delta^{(k+1)}\theta^2 + 2s\theta(1-\theta) + \delta^{(k)}(1-\theta)^2\big]
            - 2\log\big(s + [\delta^{(k+1)} + \delta^{(k)} - 2s]\,\theta(1-\theta)\big).

    Every argument broadcasts against ``x``. At :math:`\theta = 0` and :math:`1` the map
    passes through the knots with derivatives :math:`\delta^{(k)}` and
    :math:`\delta^{(k+1)}` (Durkan et al. 2019, eq. 4 and 5).

    Example:
        >>> one = torch.tensor(1.0)
        >>> rational_quadratic_bin(torch.tensor(0.5), 0 * one, one, 0 * one, one, one, one)
        (tensor(0.5000), tensor(0.))
    """
    width = x_right - x_left
    height = y_right - y_left
    slope = height / width
    theta = (x - x_left) / width
    theta_one_minus_theta = theta * (1 - theta)
    denominator = slope + (derivative_right + derivative_left - 2 * slope) * theta_one_minus_theta
    numerator = height * (slope * theta**2 + derivative_left * theta_one_minus_theta)
    y = y_left + numerator / denominator
    derivative_numerator = slope**2 * (
        derivative_right * theta**2
        + 2 * slope * theta_one_minus_theta
        + derivative_left * (1 - theta) ** 2
    )
    log_derivative = torch.log(derivative_numerator) - 2 * torch.log(denominator)
    return y, log_derivative


def _gather_bin(knots: Knots, bin_index: Tensor) -> tuple[Tensor, ...]:
    """The knots left and right of each input's bin, shaped like the inputs."""
    index = bin_index.unsqueeze(-1)

    def pick(values: Tensor, offset: int) -> Tensor:
        return values.gather(-1, index + offset).squeeze(-1)

    return (
        pick(knots.x, 0),
        pick(knots.x, 1),
        pick(knots.y, 0),
        pick(knots.y, 1),
        pick(knots.derivatives, 0),
        pick(knots.derivatives, 1),
    )


def _find_bin(knots: Tensor, values: Tensor) -> Tensor:
    """Index ``k`` of the bin with ``knots[k] <= value < knots[k+1]`` (the last bin
    includes its right end)."""
    inner = knots[..., 1:-1].contiguous()
    return torch.searchsorted(inner, values.unsqueeze(-1).contiguous(), right=True).squeeze(-1)


def rational_quadratic_spline(
    inputs: Tensor,
    raw_widths: Tensor,
    raw_heights: Tensor,
    raw_derivatives: Tensor,
    inverse: bool = False,
    bound: float = 3.0,
    min_bin_width: float = DEFAULT_MIN_BIN_WIDTH,
    min_bin_height: float = DEFAULT_MIN_BIN_HEIGHT,
    min_derivative: float = DEFAULT_MIN_DERIVATIVE,
) -> tuple[Tensor, Tensor]:
    r"""Apply a monotone rational-quadratic spline elementwise: ``(outputs, log_derivative)``.

    ``inputs`` has any shape ``S``; ``raw_widths`` and ``raw_heights`` have shape
    ``(*S, K)`` and ``raw_derivatives`` ``(*S, K - 1)``: one spline per input, its knots
    from :func:`spline_knots`. Inside :math:`[-B, B]` the spline of
    :func:`rational_quadratic_bin` is applied; outside, the identity, with log-derivative
    exactly 0. Returns the outputs and :math:`\log(dy/dx)` elementwise (shape ``S``);
    with ``inverse=True`` it returns :math:`x = g^{-1}(y)` and
    :math:`\log(dx/dy) = -\log g'(x)`.

    **The inverse** (Durkan et al. 2019, Appendix A). In the bin :math:`k` that holds
    :math:`y` (found by a search over the :math:`y`-knots), clearing the denominator of
    the forward map gives :math:`a\theta^2 + b\theta + c = 0` with
    :math:`\Delta = \delta^{(k+1)} + \delta^{(k)} - 2s` and :math:`u = y - y^{(k)}`,

    .. math::

        a = h(s - \delta^{(k)}) + u\Delta, \qquad
        b = h\delta^{(k)} - u\Delta, \qquad
        c = -s u .

    With :math:`q(\theta) = a\theta^2 + b\theta + c`, :math:`q(0) = c \le 0 \le q(1)`, and
    the root in :math:`[0, 1]` is :math:`\theta^\star = \frac{-b + \sqrt{b^2 - 4ac}}{2a}`
    whatever the sign of :math:`a`. Computed as written, it cancels when :math:`b > 0` and
    :math:`|4ac| \ll b^2` (a nearly linear bin: :math:`a \approx 0`, and :math:`0/0` when
    :math:`a = 0`). Multiplying by the conjugate gives the same root as

    .. math::

        \theta^\star = \frac{2c}{-b - \sqrt{b^2 - 4ac}},

    which adds two negative numbers when :math:`b \ge 0` but cancels when :math:`b < 0`
    (near the top of a bin whose right derivative exceeds twice its slope; there
    :math:`a > 0`). So each form is used where it adds numbers of one sign: the second
    for :math:`b \ge 0`, the first for :math:`b < 0`, the textbook remedy for the
    quadratic formula. (Durkan et al. use the second form everywhere, which loses about
    :math:`\log_{10}` of the cancellation ratio in digits in the second case.)

    Example:
        >>> generator = torch.Generator().manual_seed(0)
        >>> raw = [torch.randn(4, k, generator=generator) for k in (6, 6, 5)]
        >>> x = torch.tensor([-5.0, -1.0, 0.5, 5.0])
        >>> y, log_derivative = rational_quadratic_spline(x, *raw, bound=3.0)
        >>> y[[0, 3]], log_derivative[[0, 3]]  # the identity outside [-3, 3]
        (tensor([-5.,  5.]), tensor([0., 0.]))
        >>> x_back, log_derivative_back = rational_quadratic_spline(y, *raw, inverse=True)
        >>> x_back, torch.allclose(log_derivative_back, -log_derivative)  # g^{-1}(g(x)) = x
        (tensor([-5.0000, -1.0000,  0.5000,  5.0000]), True)
    """
    knots = spline_knots(
        raw_widths,
        raw_heights,
        raw_derivatives,
        bound,
        min_bin_width,
        min_bin_height,
        min_derivative,
    )
    if at_door():  # called on its own; inside a layer, the layer checked its input
        inputs = check_tensor(inputs, "inputs")
        if tuple(raw_widths.shape[:-1]) != tuple(inputs.shape):
            raise ValueError(
                f"expected raw_widths of shape (*inputs.shape, num_bins) = "
                f"{(*inputs.shape, raw_widths.shape[-1])}, got {tuple(raw_widths.shape)}"
            )
    bound = float(bound)
    inside = (inputs >= -bound) & (inputs <= bound)
    # Evaluate the spline on clamped inputs: the tails' values are discarded by the
    # torch.where below, but NaN or inf there would still poison the gradients.
    clamped = inputs.clamp(-bound, bound)
    # The bin of each input: found among the x-knots going forward, the y-knots inverting.
    bin_knots = _gather_bin(knots, _find_bin(knots.y if inverse else knots.x, clamped))
    if inverse:
        x_left, x_right, y_left, y_right, d_left, d_right = bin_knots
        width, height = x_right - x_left, y_right - y_left
        slope = height / width
        offset = clamped - y_left
        curvature = d_right + d_left - 2 * slope
        a = height * (slope - d_left) + offset * curvature
        b = height * d_left - offset * curvature
        c = -slope * offset
        root = torch.sqrt((b**2 - 4 * a * c).clamp(min=0.0))  # b^2 - 4ac >= 0 but round-off
        # The root in [0, 1], in whichever of its two forms adds numbers of one sign. The
        # unused form is fed a harmless denominator: NaN there would poison the gradients.
        positive_b = b >= 0
        theta = torch.where(
            positive_b,
            (2 * c) / torch.where(positive_b, -b - root, -torch.ones_like(b)),
            (root - b) / torch.where(positive_b, torch.ones_like(a), 2 * a),
        )
        x = x_left + theta * width
    else:
        x = clamped
    # One evaluation of the bin: y and log g'(x) forward; inverting, log g'(x) at the
    # solved x, whose negative is log dx/dy.
    y, log_derivative = rational_quadratic_bin(x, *bin_knots)
    outputs, log_derivative = (x, -log_derivative) if inverse else (y, log_derivative)
    outputs = torch.where(inside, outputs, inputs)
    log_derivative = torch.where(inside, log_derivative, torch.zeros_like(log_derivative))
    return outputs, log_derivative
