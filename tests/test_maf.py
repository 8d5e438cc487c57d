"""The MAF layer: inverse, log-determinants, triangular Jacobian, clamp, context, checks."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flowcourse.autoregressive import (
    MaskedAffineAutoregressive,
    autoregressive_inverse,
    random_order,
)
from flowcourse.checks import check_autoregressive, check_invertible, check_log_det
from flowcourse.core import Compose, Flow, Inverse, StandardNormal
from tests.helpers import randomize_parameters

pytestmark = pytest.mark.usefixtures("float64_by_default", "fixed_seed")


def random_layer(features: int, seed: int, random_ordering: bool = True, **kwargs):
    order = random_order(features, seed) if random_ordering else None
    layer = MaskedAffineAutoregressive(
        features, hidden_features=features + 3, order=order, **kwargs
    )
    return randomize_parameters(layer, seed=seed, scale=0.5)


@settings(max_examples=15, deadline=None)
@given(
    features=st.integers(1, 6),
    seed=st.integers(0, 10_000),
    random_ordering=st.booleans(),
    num_hidden_layers=st.integers(1, 3),
)
def test_invertible_log_det_and_triangular(features, seed, random_ordering, num_hidden_layers):
    layer = random_layer(features, seed, random_ordering, num_hidden_layers=num_hidden_layers)
    x = 2 * torch.randn(5, features, generator=torch.Generator().manual_seed(seed))
    assert check_invertible(layer, x, atol=1e-10)
    assert check_invertible(Inverse(layer), x, atol=1e-10)
    assert check_log_det(layer, x)
    assert check_log_det(Inverse(layer), x)
    assert check_autoregressive(layer, x, layer.order)
    assert check_autoregressive(Inverse(layer), x, layer.order)


def test_checks_see_a_real_non_identity_map():
    """Guard against vacuous tests: the randomised layer moves x and has a non-zero log-det."""
    layer = random_layer(4, seed=1)
    x = torch.randn(6, 4)
    z, log_abs_det = layer(x)
    assert (z - x).abs().max() > 0.1 and log_abs_det.abs().max() > 0.1
    # And the triangular check is not vacuous either: a wrong order must fail it.
    assert not check_autoregressive(layer, x, layer.order.flip(0))


def test_forward_is_the_maf_formula():
    layer = random_layer(3, seed=2)
    x = torch.randn(4, 3)
    shift, raw = layer.made(x).chunk(2, dim=1)
    log_scale = 3.0 * torch.tanh(raw / 3.0)
    z, log_abs_det = layer(x)
    assert torch.allclose(z, (x - shift) * torch.exp(-log_scale))
    assert torch.allclose(log_abs_det, -log_scale.sum(dim=1))


def test_fresh_layer_is_the_identity():
    layer = MaskedAffineAutoregressive(4, hidden_features=8)
    x = torch.randn(3, 4)
    z, log_abs_det = layer(x)
    assert torch.equal(z, x) and torch.equal(log_abs_det, torch.zeros(3))


def test_log_scale_is_soft_clamped():
    layer = MaskedAffineAutoregressive(3, hidden_features=4, log_scale_bound=2.0)
    with torch.no_grad():
        layer.made.layers[-1].bias.fill_(1e6)
    _, log_abs_det = layer(torch.randn(5, 3))
    assert torch.allclose(log_abs_det, torch.full((5,), -3 * 2.0))


def test_context_conditions_every_feature_and_stays_invertible():
    layer = randomize_parameters(
        MaskedAffineAutoregressive(3, hidden_features=5, context_features=2), seed=3
    )
    x, context = torch.randn(16, 3), torch.randn(16, 2)
    z, log_abs_det = layer(x, context)
    x_back, log_abs_det_back = layer.inverse(z, context)
    assert torch.allclose(x_back, x, atol=1e-10)
    assert torch.allclose(log_abs_det, -log_abs_det_back, atol=1e-12)
    z_other, _ = layer(x, context + 1.0)
    # Summed over the batch: a ReLU can switch a path off for one sample, not for all.
    assert torch.all((z_other - z).abs().sum(dim=0) > 0), "some feature ignores the context"


def test_flow_of_mafs_is_consistent_when_sampling():
    layers = [random_layer(3, seed=s) for s in range(3)]
    flow = Flow(Compose(*layers), StandardNormal(3)).double()
    torch.manual_seed(0)
    x, log_prob = flow.sample_and_log_prob(8)
    assert torch.allclose(log_prob, flow.log_prob(x), atol=1e-10)


def test_state_dict_round_trip_gives_identical_log_dets():
    layer = random_layer(5, seed=4)
    other = MaskedAffineAutoregressive(5, hidden_features=8, seed=123)  # natural order
    other.load_state_dict(layer.state_dict())
    assert torch.equal(other.order, layer.order)
    x = torch.randn(6, 5)
    assert torch.equal(other(x)[1], layer(x)[1])
    assert torch.equal(other.inverse(x)[0], layer.inverse(x)[0])


def test_float32():
    layer = random_layer(4, seed=6).float()
    x = torch.randn(5, 4, dtype=torch.float32)
    assert check_invertible(layer, x)
    assert check_log_det(layer, x)
    assert check_log_det(Inverse(layer), x)


BAD_INPUTS = [
    ([[0.0, 1.0, 2.0]], TypeError),
    (torch.zeros(2, 4), ValueError),
    (torch.zeros(3), ValueError),
    (torch.tensor([[0.0, math.nan, 0.0]]), ValueError),
    (torch.tensor([[0.0, -math.inf, 0.0]]), ValueError),
    (torch.zeros(2, 3, dtype=torch.float32), TypeError),
    (torch.zeros(2, 3, dtype=torch.int64), TypeError),
]


@pytest.mark.parametrize("direction", ["forward", "inverse"])
@pytest.mark.parametrize(("bad", "error"), BAD_INPUTS)
def test_bad_input_raises(direction, bad, error):
    layer = MaskedAffineAutoregressive(3, hidden_features=4)
    with pytest.raises(error, match="expected"):
        getattr(layer, direction)(bad)


def test_bad_context_raises():
    layer = MaskedAffineAutoregressive(3, hidden_features=4, context_features=2)
    with pytest.raises(ValueError, match="expected a context"):
        layer(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="expected context"):
        layer.inverse(torch.zeros(2, 3), torch.zeros(2, 5))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"features": 0}, ValueError),
        ({"features": 3, "log_scale_bound": 0.0}, ValueError),
        ({"features": 3, "log_scale_bound": math.inf}, ValueError),
        ({"features": 3, "order": [3, 3, 1]}, ValueError),
        ({"features": 5, "hidden_features": 3}, ValueError),
    ],
)
def test_bad_construction_raises(kwargs, error):
    with pytest.raises(error, match="expected"):
        MaskedAffineAutoregressive(**kwargs)


def clear_loop_inverse(layer, z, context=None):
    """MAF sampling as the chapter's loop: every pass maps all features, keeps one."""

    def solve(x):
        shift, log_scale = layer._shift_and_log_scale(x, context)
        return z * torch.exp(log_scale) + shift, log_scale.sum(dim=1)

    return autoregressive_inverse(solve, z, layer.order)


@pytest.mark.parametrize("features", [1, 2, 6])
@pytest.mark.parametrize("context_features", [0, 2])
@pytest.mark.parametrize("seed", [0, 1])
def test_inverse_is_the_clear_loop(features, context_features, seed):
    """The row-sliced inverse (made_autoregressive_inverse) equals the clear loop."""
    layer = random_layer(features, seed, context_features=context_features)
    generator = torch.Generator().manual_seed(seed)
    z = 2 * torch.randn(9, features, generator=generator)
    c = torch.randn(9, context_features, generator=generator) if context_features else None
    with torch.no_grad():
        x, log_abs_det = layer.inverse(z, context=c)
        expected_x, expected_log_abs_det = clear_loop_inverse(layer, z, c)
    assert torch.allclose(x, expected_x, rtol=1e-12, atol=1e-12)
    assert torch.allclose(log_abs_det, expected_log_abs_det, rtol=1e-12, atol=1e-12)
    assert (x - z).abs().max() > 0.1  # the comparison is not between two identities
    # With autograd recording, the loop keeps the first layer's pre-activation instead.
    x, log_abs_det = layer.inverse(z, context=c)
    assert torch.allclose(x, expected_x, rtol=1e-12, atol=1e-12)
    assert torch.allclose(log_abs_det, expected_log_abs_det, rtol=1e-12, atol=1e-12)


def test_inverse_gradients_are_those_of_the_clear_loop():
    """With autograd on (training through samples), the inverse writes out of place and
    its gradients (parameters, noise, context) equal the clear loop's."""
    layer = random_layer(5, seed=3, context_features=2)
    z, c = torch.randn(6, 5, requires_grad=True), torch.randn(6, 2, requires_grad=True)
    inputs = [z, c, *layer.parameters()]

    def gradients(x, log_abs_det):
        return torch.autograd.grad((x.sin().sum() + log_abs_det.square().sum()), inputs)

    fast = gradients(*layer.inverse(z, context=c))
    clear = gradients(*clear_loop_inverse(layer, z, c))
    for got, expected in zip(fast, clear, strict=True):
        assert torch.allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_inverse_calls_the_made_once_per_feature():
    """The chapter counts MADE calls with a forward hook: D to sample, 1 to score."""
    layer = random_layer(5, seed=4)
    calls = []
    handle = layer.made.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        layer(torch.randn(3, 5))
        layer.inverse(torch.randn(3, 5))
    handle.remove()
    assert len(calls) == 1 + 5
