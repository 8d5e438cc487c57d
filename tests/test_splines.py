"""Rational-quadratic splines and the spline layers: inverse, log-derivative, monotone,
identity tails, knots, stable inverse, bad input, context; the two NSF factories."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flowcourse import io, models
from flowcourse.autoregressive import autoregressive_inverse, random_order
from flowcourse.checks import (
    check_autoregressive,
    check_invertible,
    check_log_det,
    check_normalized,
    jacobian,
)
from flowcourse.core import Compose, Flow, Inverse, StandardNormal
from flowcourse.coupling import alternating_mask, half_mask
from flowcourse.splines import (
    MaskedRationalQuadraticAutoregressive,
    RationalQuadraticCoupling,
    rational_quadratic_bin,
    rational_quadratic_spline,
    spline_knots,
    spline_parameter_count,
    unpack_spline_parameters,
)
from tests.helpers import randomize_parameters, split_branch, split_masks

pytestmark = pytest.mark.usefixtures("float64_by_default", "fixed_seed")


def raw_parameters(shape: tuple[int, ...], num_bins: int, seed: int, scale: float = 1.0):
    """Random raw widths, heights and derivatives for splines of the given batch shape."""
    generator = torch.Generator().manual_seed(seed)

    def draw(*size: int) -> torch.Tensor:
        return scale * torch.randn(*shape, *size, generator=generator)

    return draw(num_bins), draw(num_bins), draw(num_bins - 1)


def spline(x: torch.Tensor, params, **kwargs):
    return rational_quadratic_spline(x, *params, **kwargs)


# ------------------------------------------------------------------------------ knots


def test_knots_start_and_end_at_the_bound_and_increase():
    params = raw_parameters((50,), num_bins=7, seed=0, scale=3.0)
    knots = spline_knots(*params, bound=2.5)
    for values in (knots.x, knots.y):
        assert values.shape == (50, 8)
        assert torch.all(values[:, 0] == -2.5) and torch.all(values[:, -1] == 2.5)
        assert torch.all(values.diff(dim=-1) > 0)
    # The derivatives are positive, 1 at both ends (the identity tails' slope).
    assert torch.all(knots.derivatives > 0) and knots.derivatives.shape == (50, 8)
    assert torch.all(knots.derivatives[:, [0, -1]] == 1.0)


def test_minimum_width_height_and_derivative_hold_for_extreme_raw_numbers():
    widths = torch.tensor([[-1e3, 0.0, 1e3, 0.0]])
    derivatives = torch.tensor([[-1e3, 1e3, 0.0]])
    knots = spline_knots(
        widths,
        widths,
        derivatives,
        bound=1.0,
        min_bin_width=0.01,
        min_bin_height=0.02,
        min_derivative=0.05,
    )
    assert float(knots.x.diff().min()) == pytest.approx(2 * 0.01)
    assert float(knots.y.diff().min()) == pytest.approx(2 * 0.02)
    assert float(knots.derivatives.min()) == pytest.approx(0.05)
    # softplus(r + c) = r + c for a large r, c = log(e^(1 - 0.05) - 1)
    expected = 0.05 + 1e3 + math.log(math.expm1(0.95))
    assert float(knots.derivatives[0, 2]) == pytest.approx(expected, rel=1e-12)


def test_zero_raw_numbers_give_the_identity():
    x = torch.linspace(-4, 4, 101)
    params = tuple(torch.zeros(101, k) for k in (5, 5, 4))
    y, log_derivative = spline(x, params, bound=3.0)
    assert torch.allclose(y, x, atol=1e-14) and log_derivative.abs().max() < 1e-14


def test_unpack_is_parameter_major_like_a_made():
    features, num_bins = 3, 4
    per_feature = spline_parameter_count(num_bins)
    params = torch.arange(2 * per_feature * features, dtype=torch.float64).reshape(2, -1)
    widths, heights, derivatives = unpack_spline_parameters(params, features, num_bins)
    grid = params.reshape(2, per_feature, features)
    assert torch.equal(widths[:, 1], grid[:, :num_bins, 1])
    assert torch.equal(heights[:, 2], grid[:, num_bins : 2 * num_bins, 2])
    assert torch.equal(derivatives[:, 0], grid[:, 2 * num_bins :, 0])


# ------------------------------------------------------------------ one bin, by the formula


def test_one_bin_passes_through_its_knots_with_their_derivatives():
    x_left, x_right, y_left, y_right = (torch.tensor(v) for v in (-0.5, 0.7, 0.1, 0.4))
    d_left, d_right = torch.tensor(3.0), torch.tensor(0.2)
    ends = torch.stack([x_left, x_right])
    y, log_derivative = rational_quadratic_bin(
        ends, x_left, x_right, y_left, y_right, d_left, d_right
    )
    assert torch.allclose(y, torch.stack([y_left, y_right]), atol=1e-15)
    assert torch.allclose(log_derivative, torch.stack([d_left, d_right]).log(), atol=1e-14)
    # Monotone in between, and the log-derivative is the derivative's log.
    x = torch.linspace(-0.5, 0.7, 200, requires_grad=True)
    y, log_derivative = rational_quadratic_bin(x, x_left, x_right, y_left, y_right, d_left, d_right)
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.all(y.diff() > 0)
    assert torch.allclose(grad.log(), log_derivative, atol=1e-12)


def test_one_bin_is_linear_when_both_derivatives_equal_the_slope():
    one = torch.tensor(1.0)
    x = torch.linspace(0, 2, 11)
    y, log_derivative = rational_quadratic_bin(
        x, 0 * one, 2 * one, one, 2 * one, 0.5 * one, 0.5 * one
    )
    assert torch.allclose(y, 1 + 0.5 * x, atol=1e-15)
    assert torch.allclose(log_derivative, torch.full_like(x, math.log(0.5)), atol=1e-15)


# ------------------------------------------------------------------------ the whole spline


@settings(max_examples=20, deadline=None)
@given(
    num_bins=st.integers(1, 12),
    seed=st.integers(0, 10_000),
    scale=st.sampled_from([0.1, 1.0, 3.0]),
    bound=st.sampled_from([0.5, 3.0, 10.0]),
)
def test_round_trip_and_log_derivative_against_autograd(num_bins, seed, scale, bound):
    generator = torch.Generator().manual_seed(seed)
    x = 1.3 * bound * (2 * torch.rand(300, generator=generator) - 1)
    params = raw_parameters((300,), num_bins, seed, scale)
    x.requires_grad_(True)
    y, log_derivative = spline(x, params, bound=bound)
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.allclose(log_derivative, grad.log(), atol=1e-10)
    x_back, log_derivative_back = spline(y.detach(), params, inverse=True, bound=bound)
    # Backward-stable: the error in x is round-off in y divided by the slope.
    error = (x_back - x.detach()).abs() * log_derivative.detach().exp()
    assert float(error.max()) < 1e-13 * bound
    assert torch.allclose(log_derivative_back, -log_derivative.detach(), atol=1e-9)


def test_monotone_increasing_with_positive_derivative():
    x = torch.linspace(-3.5, 3.5, 2001).expand(40, -1)
    params = raw_parameters((40, 2001), 8, seed=3, scale=3.0)
    params = tuple(p[:, :1].expand_as(p) for p in params)  # one spline per row
    y, log_derivative = spline(x, params, bound=3.0)
    assert torch.all(y.diff(dim=1) > 0)
    assert torch.all(log_derivative.isfinite())
    _, log_derivative_back = spline(y, params, inverse=True, bound=3.0)
    assert torch.all(log_derivative_back.isfinite())


@pytest.mark.parametrize("inverse", [False, True])
def test_tails_are_exactly_the_identity(inverse):
    x = torch.tensor([-1e6, -7.0, -3.0000001, 3.0000001, 4.5, 1e6])
    params = raw_parameters((6,), 6, seed=4, scale=3.0)
    y, log_derivative = spline(x, params, inverse=inverse, bound=3.0)
    assert torch.equal(y, x) and torch.equal(log_derivative, torch.zeros(6))
    # The gradient in the tails is exactly 1, not NaN, even for extreme inputs.
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(spline(x, params, inverse=inverse, bound=3.0)[0].sum(), x)
    assert torch.equal(grad, torch.ones(6))


@pytest.mark.parametrize("inverse", [False, True])
def test_knots_at_the_boundary_join_the_tails(inverse):
    bound = 2.0
    params = raw_parameters((4,), 5, seed=5, scale=2.0)
    at_bound = torch.tensor([-bound, bound, -bound, bound])
    y, log_derivative = spline(at_bound, params, inverse=inverse, bound=bound)
    assert torch.equal(y, at_bound)  # the end knots are exactly (-B, -B) and (B, B)
    assert log_derivative.abs().max() < 1e-12  # slope 1 there, as in the tails
    # Continuous across the boundary: just inside, the map is within O(eps) of the tails.
    eps = 1e-7
    inside = torch.tensor([-bound + eps, bound - eps, -bound + eps, bound - eps])
    y_inside, _ = spline(inside, params, inverse=inverse, bound=bound)
    assert torch.allclose(y_inside, inside, atol=1e-6)


@pytest.mark.parametrize("inverse", [False, True])
def test_values_exactly_on_a_knot(inverse):
    params = raw_parameters((3,), 6, seed=6, scale=2.0)
    knots = spline_knots(*params, bound=3.0)
    for k in range(7):
        start, end = (knots.y, knots.x) if inverse else (knots.x, knots.y)
        out, log_derivative = spline(start[:, k].clone(), params, inverse=inverse)
        assert torch.allclose(out, end[:, k], atol=1e-13, rtol=0), k
        expected = knots.derivatives[:, k].log()
        assert torch.allclose(log_derivative, -expected if inverse else expected, atol=1e-10)


def test_inverse_is_stable_near_knots_and_with_extreme_derivatives():
    num_bins, batch = 8, 400
    widths, heights, derivatives = raw_parameters((batch,), num_bins, seed=7, scale=2.0)
    derivatives = derivatives.sign() * 8.0  # inner derivatives near 3e-4 (floor 1e-3) or 8
    params = (widths, heights, derivatives)
    knots = spline_knots(*params)
    # Points within 1e-9 of every inner knot, on both sides.
    k = torch.randint(1, num_bins, (batch,), generator=torch.Generator().manual_seed(8))
    offsets = 1e-9 * torch.where(torch.arange(batch) % 2 == 0, 1.0, -1.0)
    x = knots.x.gather(1, k[:, None]).squeeze(1) + offsets
    y, log_derivative = spline(x, params)
    x_back, log_derivative_back = spline(y, params, inverse=True)
    assert float((x_back - x).abs().max()) < 1e-10
    y_again, _ = spline(x_back, params)
    # Backward stable: g(x_back) misses y only by round-off in x times the slope g'.
    assert float(((y_again - y).abs() / (1 + log_derivative.exp())).max()) < 1e-14
    # Beside a knot where the slope jumps from 1.6e-3 to 8, log g' moves by 1e5 per unit
    # of x: a 1e-10 error in x is a 1e-5 error in the log-derivative, and no more.
    assert float((log_derivative + log_derivative_back).abs().max()) < 1e-4


def test_inverse_takes_the_stable_root_on_nearly_linear_bins():
    # Raw numbers near zero: every bin is nearly linear and the quadratic's leading
    # coefficient a nearly vanishes. The textbook root (-b + sqrt(b^2 - 4ac)) / 2a then
    # divides round-off by round-off; 2c / (-b - sqrt(b^2 - 4ac)) does not.
    params = raw_parameters((500,), 8, seed=9, scale=1e-9)
    y = torch.linspace(-2.9, 2.9, 500)
    x, _ = spline(y, params, inverse=True)
    y_back, _ = spline(x, params)
    assert float((y_back - y).abs().max()) < 1e-14
    # The same bins with exactly linear pieces (a = 0 exactly) invert exactly.
    zeros = tuple(torch.zeros_like(p) for p in params)
    x, log_derivative = spline(y, zeros, inverse=True)
    assert torch.allclose(x, y, atol=1e-15) and log_derivative.abs().max() < 1e-14

    # The naive root on the same problem loses about half of the digits, so the test can
    # tell the two apart.
    knots = spline_knots(*params)
    k = torch.searchsorted(knots.y[:, 1:-1].contiguous(), y[:, None], right=True).squeeze(1)
    pick = lambda values, shift: values.gather(1, (k + shift)[:, None]).squeeze(1)  # noqa: E731
    x0, x1, y0, y1 = pick(knots.x, 0), pick(knots.x, 1), pick(knots.y, 0), pick(knots.y, 1)
    d0, d1 = pick(knots.derivatives, 0), pick(knots.derivatives, 1)
    s = (y1 - y0) / (x1 - x0)
    a = (y1 - y0) * (s - d0) + (y - y0) * (d1 + d0 - 2 * s)
    b = (y1 - y0) * d0 - (y - y0) * (d1 + d0 - 2 * s)
    c = -s * (y - y0)
    naive = x0 + (-b + torch.sqrt(b**2 - 4 * a * c)) / (2 * a) * (x1 - x0)
    naive_back, _ = spline(naive, params)
    assert float((naive_back - y).abs().max()) > 1e-10


def test_inverse_takes_the_other_form_of_the_root_when_b_is_negative():
    # Two bins: the first flat (slope 0.003) with a derivative of 4.6 at its right knot.
    # Near that knot b < 0, where 2c / (-b - sqrt(b^2 - 4ac)) cancels; the package then
    # switches to (-b + sqrt(b^2 - 4ac)) / 2a, which does not.
    raw = [
        torch.tensor([[0.0, 0.0]]).expand(200, 2),
        torch.tensor([[-4.0, 4.0]]).expand(200, 2),
        torch.tensor([[4.0]]).expand(200, 1),
    ]
    x = -torch.logspace(-12, -1, 200)  # just left of the inner knot at 0
    y, _ = spline(x, raw)
    x_back, _ = spline(y, raw, inverse=True)
    backward_error = float((spline(x_back, raw)[0] - y).abs().max())
    assert backward_error < 1e-14

    knots = spline_knots(*(r[:1] for r in raw))
    x0, x1, y0, y1 = knots.x[0, 0], knots.x[0, 1], knots.y[0, 0], knots.y[0, 1]
    d0, d1 = knots.derivatives[0, 0], knots.derivatives[0, 1]
    s, u = (y1 - y0) / (x1 - x0), y - y0
    a = (y1 - y0) * (s - d0) + u * (d1 + d0 - 2 * s)
    b = (y1 - y0) * d0 - u * (d1 + d0 - 2 * s)
    c = -s * u
    assert bool((b < 0).all()), "the test must exercise the b < 0 case"
    one_form = x0 + 2 * c / (-b - torch.sqrt(b**2 - 4 * a * c)) * (x1 - x0)
    one_form_error = float((spline(one_form, raw)[0] - y).abs().max())
    assert one_form_error > 100 * backward_error


def test_gradients_reach_every_raw_number_and_stay_finite():
    params = [p.requires_grad_(True) for p in raw_parameters((30,), 5, seed=10)]
    x = torch.linspace(-5, 5, 30)  # inside and outside [-3, 3]
    for inverse in (False, True):
        y, log_derivative = spline(x, params, inverse=inverse)
        grads = torch.autograd.grad((y + log_derivative).sum(), params)
        assert all(bool(g.isfinite().all()) and g.abs().sum() > 0 for g in grads)


BAD_SPLINE_CALLS = [
    (dict(inputs=[0.0, 1.0]), TypeError, "inputs to be a torch.Tensor"),
    (dict(inputs=torch.tensor([0.0, math.nan])), ValueError, "inputs to be finite"),
    (dict(inputs=torch.zeros(3)), ValueError, r"raw_widths of shape \(\*inputs.shape"),
    (dict(raw_heights=torch.zeros(2, 5)), ValueError, "raw_heights of shape"),
    (dict(raw_derivatives=torch.zeros(2, 4)), ValueError, "raw_derivatives of shape"),
    (dict(raw_widths=torch.zeros(2, 4).long()), TypeError, "raw_widths to be a floating-point"),
    (dict(raw_heights=torch.zeros(2, 4).float()), TypeError, "raw_heights of the dtype and device"),
    (dict(raw_widths=torch.full((2, 4), math.inf)), ValueError, "raw_widths to be finite"),
    (dict(bound=0.0), ValueError, "bound to be a positive finite number"),
    (dict(bound=math.inf), ValueError, "bound to be a positive finite number"),
    (dict(bound="3"), TypeError, "bound to be a number"),
    (dict(min_bin_width=0.25), ValueError, r"min_bin_width in \[0, 1/num_bins\)"),
    (dict(min_derivative=-0.1), ValueError, r"min_derivative in \[0, 1\)"),
]


@pytest.mark.parametrize(("change", "error", "match"), BAD_SPLINE_CALLS)
def test_bad_spline_arguments_raise(change, error, match):
    arguments = dict(
        inputs=torch.zeros(2),
        raw_widths=torch.zeros(2, 4),
        raw_heights=torch.zeros(2, 4),
        raw_derivatives=torch.zeros(2, 3),
    )
    arguments.update(change)
    with pytest.raises(error, match="expected " + match):
        rational_quadratic_spline(**arguments)


@pytest.mark.parametrize(
    ("change", "error", "match"), [bad for bad in BAD_SPLINE_CALLS if "inputs" not in bad[0]]
)
def test_bad_knot_arguments_raise(change, error, match):
    arguments = dict(
        raw_widths=torch.zeros(2, 4),
        raw_heights=torch.zeros(2, 4),
        raw_derivatives=torch.zeros(2, 3),
    )
    arguments.update(change)
    with pytest.raises(error, match="expected " + match):
        spline_knots(**arguments)


# ------------------------------------------------------------------------------ the layers


def random_coupling(features, seed, num_bins=5, mask=None, **kwargs):
    mask = alternating_mask(features) if mask is None else mask
    layer = RationalQuadraticCoupling.for_vectors(
        mask, hidden_features=8, num_bins=num_bins, **kwargs
    )
    return randomize_parameters(layer, seed=seed, scale=0.5)


def random_autoregressive(features, seed, num_bins=5, random_ordering=True, **kwargs):
    order = random_order(features, seed) if random_ordering else None
    layer = MaskedRationalQuadraticAutoregressive(
        features, hidden_features=features + 3, num_bins=num_bins, order=order, **kwargs
    )
    return randomize_parameters(layer, seed=seed, scale=0.5)


@settings(max_examples=12, deadline=None)
@given(features=st.integers(2, 6), seed=st.integers(0, 10_000), num_bins=st.integers(1, 9))
def test_coupling_invertible_log_det_and_block_triangular(features, seed, num_bins):
    layer = random_coupling(features, seed, num_bins)
    x = 2 * torch.randn(6, features, generator=torch.Generator().manual_seed(seed))
    for transform in (layer, Inverse(layer)):
        assert check_invertible(transform, x, atol=1e-10)
        assert check_log_det(transform, x)
    jac = jacobian(layer, x).abs().amax(dim=0)
    kept, changed = layer.mask, ~layer.mask
    # Kept values pass through; a transformed value reads the kept ones and itself only.
    assert torch.equal(jac[kept][:, kept], torch.eye(int(kept.sum())))
    assert torch.all(jac[kept][:, changed] == 0)
    off_diagonal = jac[changed][:, changed] - torch.diag(jac[changed][:, changed].diagonal())
    assert torch.all(off_diagonal == 0)


@settings(max_examples=12, deadline=None)
@given(
    features=st.integers(1, 5),
    seed=st.integers(0, 10_000),
    num_bins=st.integers(1, 9),
    random_ordering=st.booleans(),
)
def test_autoregressive_invertible_log_det_and_triangular(
    features, seed, num_bins, random_ordering
):
    layer = random_autoregressive(features, seed, num_bins, random_ordering)
    x = 2 * torch.randn(6, features, generator=torch.Generator().manual_seed(seed))
    for transform in (layer, Inverse(layer)):
        assert check_invertible(transform, x, atol=1e-10)
        assert check_log_det(transform, x)
        assert check_autoregressive(transform, x, layer.order)


def test_checks_see_real_non_identity_maps():
    """Guard against vacuous tests: the randomised layers move x and change volume."""
    x = torch.randn(8, 4)
    for layer in (random_coupling(4, seed=1), random_autoregressive(4, seed=1)):
        z, log_abs_det = layer(x)
        assert (z - x).abs().max() > 0.05 and log_abs_det.abs().max() > 0.05
    assert not check_autoregressive(random_autoregressive(4, seed=1), x, torch.arange(4, 0, -1))


def test_fresh_layers_are_the_identity():
    x = 2 * torch.randn(5, 4)
    for layer in (
        RationalQuadraticCoupling.for_vectors(half_mask(4), hidden_features=8),
        MaskedRationalQuadraticAutoregressive(4, hidden_features=8),
    ):
        z, log_abs_det = layer(x)
        assert torch.allclose(z, x, atol=1e-14) and log_abs_det.abs().max() < 1e-13


def test_layers_compute_the_spline_of_their_conditioner():
    x = torch.randn(5, 4)
    layer = random_autoregressive(4, seed=2)
    widths, heights, derivatives = unpack_spline_parameters(layer.made(x), 4, layer.num_bins)
    expected, expected_log = rational_quadratic_spline(x, widths, heights, derivatives)
    z, log_abs_det = layer(x)
    assert torch.equal(z, expected) and torch.allclose(log_abs_det, expected_log.sum(dim=1))

    coupling = random_coupling(4, seed=2, mask=half_mask(4))
    params = unpack_spline_parameters(coupling.conditioner(x), 4, coupling.num_bins)
    expected, expected_log = rational_quadratic_spline(x[:, 2:], *(p[:, 2:] for p in params))
    z, log_abs_det = coupling(x)
    assert torch.equal(z[:, :2], x[:, :2]) and torch.equal(z[:, 2:], expected)
    assert torch.allclose(log_abs_det, expected_log.sum(dim=1))


def test_autoregressive_inverse_takes_one_made_pass_per_feature():
    layer = random_autoregressive(5, seed=3)
    calls = []
    handle = layer.made.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        z, _ = layer(torch.randn(4, 5))
        assert len(calls) == 1
        layer.inverse(z)
    handle.remove()
    assert len(calls) == 1 + 5


SPLIT_MASKS = split_masks()


class MaskedOnly(torch.nn.Module):
    """The same CouplingMLP behind a plain module: the layer must take its masked path."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x, context=None):
        return self.net(x, context)


@pytest.mark.parametrize("mask_name", list(SPLIT_MASKS))
@pytest.mark.parametrize("context_features", [0, 3])
def test_coupling_split_form_is_the_masked_path(mask_name, context_features):
    mask, branch = SPLIT_MASKS[mask_name]
    layer = random_coupling(7, seed=11, mask=mask, context_features=context_features)
    masked = RationalQuadraticCoupling(
        mask, MaskedOnly(layer.conditioner), layer.num_bins, layer.bound, context_features
    )
    assert layer.split_form() and not masked.split_form()  # the two branches under test
    assert split_branch(layer.conditioner) == branch
    generator = torch.Generator().manual_seed(12)
    x = 2 * torch.randn(9, 7, generator=generator)
    context = torch.randn(9, 3, generator=generator) if context_features else None
    z, log_abs_det = layer(x, context)
    z_expected, log_abs_det_expected = masked(x, context)
    assert torch.allclose(z, z_expected, rtol=0.0, atol=1e-12)
    assert torch.allclose(log_abs_det, log_abs_det_expected, rtol=0.0, atol=1e-12)
    assert torch.equal(z[:, mask], x[:, mask])  # kept values pass through bit for bit
    assert (z - x).abs().max() > 0.1 and log_abs_det.abs().min() > 1e-3  # not the identity
    x_back, log_abs_det_back = layer.inverse(x, context)
    x_expected, log_abs_det_back_expected = masked.inverse(x, context)
    assert torch.allclose(x_back, x_expected, rtol=0.0, atol=1e-12)
    assert torch.allclose(log_abs_det_back, log_abs_det_back_expected, rtol=0.0, atol=1e-12)
    assert (x_back - x).abs().max() > 0.1
    for got, expected in zip(
        layer.spline_parameters(x, context), masked.spline_parameters(x, context), strict=True
    ):
        assert torch.equal(got, expected)


@pytest.mark.parametrize("context_features", [0, 2])
def test_coupling_split_form_calls_the_conditioner_once_per_pass(context_features):
    # The chapters count network passes with forward hooks on `conditioner`.
    layer = random_coupling(5, seed=13, context_features=context_features)
    assert layer.split_form()
    context = torch.randn(4, 2) if context_features else None
    calls = []
    handle = layer.conditioner.register_forward_hook(lambda *_: calls.append(1))
    z, _ = layer(torch.randn(4, 5), context)
    layer.inverse(z, context)
    handle.remove()
    assert len(calls) == 2


def clear_loop_inverse(layer, z, context=None):
    """The spline layer's inverse as the clear loop: every pass reads all D features'
    splines from a full MADE pass and keeps one position."""

    def solve(x):
        widths, heights, derivatives = layer.spline_parameters(x, context)
        solved, log_derivative = rational_quadratic_spline(
            z, widths, heights, derivatives, inverse=True, bound=layer.bound
        )
        return solved, log_derivative.sum(dim=1)

    return autoregressive_inverse(solve, z, layer.order)


@pytest.mark.parametrize("features", [1, 2, 6])
@pytest.mark.parametrize("context_features", [0, 2])
@pytest.mark.parametrize("num_bins", [2, 5])
def test_autoregressive_inverse_is_the_clear_loop(features, context_features, num_bins):
    """The one-feature-per-pass inverse (made_autoregressive_inverse) equals the clear loop."""
    layer = random_autoregressive(
        features, seed=14, num_bins=num_bins, context_features=context_features
    )
    generator = torch.Generator().manual_seed(15)
    z = 2 * torch.randn(9, features, generator=generator)
    c = torch.randn(9, context_features, generator=generator) if context_features else None
    with torch.no_grad():
        x, log_abs_det = layer.inverse(z, c)
        expected_x, expected_log_abs_det = clear_loop_inverse(layer, z, c)
    assert torch.allclose(x, expected_x, rtol=0.0, atol=1e-12)
    assert torch.allclose(log_abs_det, expected_log_abs_det, rtol=0.0, atol=1e-12)
    assert (x - z).abs().max() > 0.1 and log_abs_det.abs().max() > 1e-3  # not the identity
    z_back, forward_log_abs_det = layer(x, c)  # and it is the forward map's inverse
    assert torch.allclose(z_back, z, atol=1e-10)
    assert torch.allclose(forward_log_abs_det, -log_abs_det, atol=1e-10)


def test_autoregressive_inverse_gradients_are_those_of_the_clear_loop():
    """With autograd on (training through samples) the gradients (parameters, noise,
    context) equal the clear loop's."""
    layer = random_autoregressive(4, seed=16, context_features=2)
    z, c = 2 * torch.randn(6, 4, requires_grad=True), torch.randn(6, 2, requires_grad=True)
    inputs = [z, c, *layer.parameters()]

    def gradients(x, log_abs_det):
        return torch.autograd.grad(x.sin().sum() + log_abs_det.square().sum(), inputs)

    fast = gradients(*layer.inverse(z, c))
    clear = gradients(*clear_loop_inverse(layer, z, c))
    for got, expected in zip(fast, clear, strict=True):
        assert torch.allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["coupling", "autoregressive"])
def test_context_conditions_the_layer_and_keeps_it_invertible(kind):
    if kind == "coupling":
        layer = random_coupling(3, seed=4, context_features=2)
    else:
        layer = random_autoregressive(3, seed=4, context_features=2)
    x, context = torch.randn(16, 3), torch.randn(16, 2)
    z, log_abs_det = layer(x, context)
    x_back, log_abs_det_back = layer.inverse(z, context)
    assert torch.allclose(x_back, x, atol=1e-10)
    assert torch.allclose(log_abs_det, -log_abs_det_back, atol=1e-10)
    z_other, _ = layer(x, context + 1.0)
    changed = (z_other - z).abs().sum(dim=0) > 0
    expected = ~layer.mask if kind == "coupling" else torch.ones(3, dtype=torch.bool)
    assert torch.equal(changed, expected), "a transformed feature ignores the context"
    # A conditional flow of spline layers passes the context to each of them.
    flow = Flow(
        Compose(layer, random_coupling(3, seed=5, context_features=2)),
        StandardNormal(3),
        context_features=2,
    )
    assert flow.log_prob(x, context).shape == (16,)
    assert flow.sample(4, context=context[:4]).shape == (4, 3)


@pytest.mark.parametrize("kind", ["coupling", "autoregressive"])
def test_context_is_refused_or_required_with_a_clear_error(kind):
    build = random_coupling if kind == "coupling" else random_autoregressive
    plain, conditional = build(3, seed=6), build(3, seed=6, context_features=2)
    x = torch.randn(4, 3)
    for method in (plain.forward, plain.inverse):
        with pytest.raises(ValueError, match="expected no context .*context_features=0"):
            method(x, torch.zeros(4, 2))
    for method in (conditional.forward, conditional.inverse):
        with pytest.raises(ValueError, match=r"expected a context of shape \(batch, 2\)"):
            method(x)
        with pytest.raises(ValueError, match=r"expected context of shape \(batch, 2\)"):
            method(x, torch.zeros(4, 3))
        with pytest.raises(ValueError, match="one context row per sample"):
            method(x, torch.zeros(5, 2))


BAD_LAYER_INPUTS = [
    ([[0.0, 1.0, 2.0]], TypeError),
    (torch.zeros(2, 4), ValueError),
    (torch.zeros(3), ValueError),
    (torch.tensor([[0.0, math.nan, 0.0]]), ValueError),
    (torch.tensor([[0.0, -math.inf, 0.0]]), ValueError),
    (torch.zeros(2, 3, dtype=torch.float32), TypeError),
    (torch.zeros(2, 3, dtype=torch.int64), TypeError),
]


@pytest.mark.parametrize("kind", ["coupling", "autoregressive"])
@pytest.mark.parametrize("direction", ["forward", "inverse"])
@pytest.mark.parametrize(("bad", "error"), BAD_LAYER_INPUTS)
def test_bad_layer_input_raises(kind, direction, bad, error):
    layer = random_coupling(3, seed=7) if kind == "coupling" else random_autoregressive(3, seed=7)
    with pytest.raises(error, match="expected"):
        getattr(layer, direction)(bad)


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (
            lambda: RationalQuadraticCoupling.for_vectors(half_mask(4), num_bins=0),
            ValueError,
            "num_bins to be a positive int",
        ),
        (
            lambda: RationalQuadraticCoupling.for_vectors(half_mask(4), bound=-1.0),
            ValueError,
            "bound to be a positive finite number",
        ),
        (lambda: RationalQuadraticCoupling.for_vectors(torch.ones(4)), TypeError, "bool tensor"),
        (lambda: RationalQuadraticCoupling(half_mask(4), "mlp"), TypeError, "nn.Module"),
        (
            lambda: RationalQuadraticCoupling.for_vectors(half_mask(4), context_features=-1),
            ValueError,
            "context_features to be an int >= 0",
        ),
        (lambda: MaskedRationalQuadraticAutoregressive(0), ValueError, "features to be a positive"),
        (
            lambda: MaskedRationalQuadraticAutoregressive(3, num_bins=2.0),
            TypeError,
            "num_bins to be an int",
        ),
        (
            lambda: MaskedRationalQuadraticAutoregressive(5, hidden_features=3),
            ValueError,
            "at least 4 units",
        ),
    ],
)
def test_bad_construction_raises(build, error, match):
    with pytest.raises(error, match="expected .*" + match):
        build()


def test_a_conditioner_of_the_wrong_size_is_reported():
    layer = RationalQuadraticCoupling(half_mask(4), torch.nn.Linear(4, 10), num_bins=3)
    with pytest.raises(ValueError, match=r"expected the conditioner to return shape \(2, 32\)"):
        layer(torch.zeros(2, 4))


def test_state_dict_round_trip_and_float32():
    for build in (random_coupling, random_autoregressive):
        layer = build(5, seed=8)
        other = build(5, seed=9)
        other.load_state_dict(layer.state_dict())
        x = torch.randn(6, 5)
        assert torch.equal(other(x)[1], layer(x)[1])
        assert torch.equal(other.inverse(x)[0], layer.inverse(x)[0])
        single = build(5, seed=8).float()
        assert check_invertible(single, x.float()) and check_log_det(single, x.float())


# ---------------------------------------------------------------------------- the factories

SMALL = {
    "nsf_coupling": dict(features=3, num_layers=3, hidden_features=8, num_bins=4),
    "nsf_autoregressive": dict(features=3, num_layers=3, hidden_features=8, num_bins=4),
}


def small_flow(name, seed=0, scale=0.3, **overrides):
    flow = getattr(models, name)(**{**SMALL[name], **overrides}).double()
    return randomize_parameters(flow, seed=seed, scale=scale)


@pytest.mark.parametrize("name", list(SMALL))
def test_factory_flows_are_invertible_with_the_right_log_det(name):
    flow = small_flow(name, seed=1)
    x = 1.5 * torch.randn(5, 3)
    z, log_abs_det = flow(x)
    assert (z - x).abs().max() > 1e-2 and log_abs_det.abs().max() > 1e-3
    assert check_invertible(flow.transform, x, atol=1e-10)
    assert check_log_det(flow.transform, x)
    torch.manual_seed(1)
    samples, log_prob = flow.sample_and_log_prob(6)
    assert torch.allclose(log_prob, flow.log_prob(samples), atol=1e-9)


@pytest.mark.parametrize("name", list(SMALL))
def test_two_dimensional_factory_flows_integrate_to_one(name):
    # Mild weights: a random spline flow with sharp peaks needs a finer grid than this.
    flow = small_flow(name, seed=2, features=2, scale=0.1)
    assert flow.log_prob(torch.randn(5, 2)).std() > 0.1, "a non-trivial density"
    result = check_normalized(flow, bounds=(-8.0, 8.0), resolution=300, tolerance=0.01)
    assert result, result.message


def test_the_autoregressive_orders_alternate():
    flow = small_flow("nsf_autoregressive", seed=3, features=4, num_layers=2)
    first, second = flow.transform
    natural = torch.arange(1, 5)
    assert torch.equal(first.order, natural) and torch.equal(second.order, natural.flip(0))
    x = torch.randn(3, 4)
    assert check_autoregressive(first, x, natural) and check_autoregressive(
        second, x, natural.flip(0)
    )


@pytest.mark.parametrize("name", list(SMALL))
def test_config_rebuilds_the_same_model_and_the_seed_is_local(name):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    flow = getattr(models, name)(**SMALL[name], seed=1)
    assert torch.equal(torch.rand(3), expected), "the factory touched the global random state"
    config = json.loads(json.dumps(flow.config))
    assert config == flow.config and config["factory"] == name
    rebuilt = getattr(models, name)(**config["kwargs"])
    assert all(
        torch.equal(a, b)
        for a, b in zip(flow.state_dict().values(), rebuilt.state_dict().values(), strict=True)
    )
    other_seed = getattr(models, name)(**SMALL[name], seed=2)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(flow.state_dict().values(), other_seed.state_dict().values(), strict=True)
    )


@pytest.mark.parametrize("name", list(SMALL))
def test_io_save_and_load_give_identical_log_prob(name, tmp_path):
    flow = randomize_parameters(getattr(models, name)(**SMALL[name]).float(), seed=4, scale=0.3)
    flow.eval()
    path = tmp_path / f"{name}.pt"
    io.save(flow, path)
    loaded = io.load(path)
    assert loaded.config == flow.config and not loaded.training
    x = torch.randn(7, 3, dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(x), flow.log_prob(x))
        torch.manual_seed(5)
        first = flow.sample(3)
        torch.manual_seed(5)
        assert torch.equal(loaded.sample(3), first)


@pytest.mark.parametrize("name", list(SMALL))
def test_factory_bad_input_and_arguments_raise(name):
    flow = small_flow(name, seed=6)
    for bad, error in BAD_LAYER_INPUTS:
        with pytest.raises(error, match="expected"):
            flow.log_prob(bad)
    with pytest.raises(ValueError, match="expected num_layers to be a positive int"):
        getattr(models, name)(features=3, num_layers=0)
    with pytest.raises(TypeError, match="expected seed to be an int"):
        getattr(models, name)(features=3, seed="0")
    with pytest.raises(ValueError, match="expected num_bins to be a positive int"):
        getattr(models, name)(features=3, num_bins=0)


@pytest.mark.parametrize("name", list(SMALL))
def test_conditional_factory_flows_use_the_context_and_round_trip_through_io(name, tmp_path):
    flow = small_flow(name, seed=7, context_features=2)
    x, context = torch.randn(6, 3), torch.randn(6, 2)
    log_prob = flow.log_prob(x, context=context)
    assert (log_prob - flow.log_prob(x, context=context + 1.0)).abs().min() > 0
    assert check_invertible(flow.transform, x, context=context, atol=1e-10)
    assert check_log_det(flow.transform, x, context=context)
    with pytest.raises(ValueError, match="expected a context"):
        flow.log_prob(x)
    io.save(flow, tmp_path / "conditional.pt")
    loaded = io.load(tmp_path / "conditional.pt")
    assert loaded.config["kwargs"]["context_features"] == 2
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(x, context=context), log_prob.detach())
