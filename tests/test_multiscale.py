"""RealNVP's multi-scale architecture: factoring out half the variables at each scale."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from flowcourse.checks import check_invertible, check_log_det, jacobian
from flowcourse.core import Compose, Flow, StandardNormal
from flowcourse.coupling import (
    AffineCoupling,
    MultiScale,
    Squeeze,
    checkerboard_mask,
    realnvp_multiscale,
)
from tests.helpers import randomize_parameters

DOUBLE = torch.float64


def digits_model(seed: int = 0, num_scales: int = 2, size: int | tuple[int, int] = 8) -> nn.Module:
    """The book's setting: 1-channel 8x8 images, randomised so that no layer is the identity."""
    model = realnvp_multiscale(1, size, num_scales=num_scales, hidden_channels=4).double()
    return randomize_parameters(model, seed=seed, scale=0.2)


def test_realnvp_on_8x8_digits_inverts_and_log_det_matches_a_64x64_jacobian():
    model = digits_model()
    x = torch.randn(2, 1, 8, 8, dtype=DOUBLE)
    assert check_invertible(model, x)
    result = check_log_det(model, x)
    assert result, result.message
    z, log_abs_det = model(x)
    assert z.shape == x.shape
    assert log_abs_det.abs().min() > 1e-2  # randomised: the check above could have failed


@settings(max_examples=8, deadline=None)
@given(
    channels=st.integers(1, 2),
    num_scales=st.integers(1, 3),
    base=st.sampled_from([(1, 2), (2, 2), (2, 1)]),
    seed=st.integers(0, 10_000),
)
def test_any_valid_shape_round_trips_to_the_same_shape(channels, num_scales, base, seed):
    height, width = (b * 2 ** (num_scales - 1) for b in base)
    model = realnvp_multiscale(channels, (height, width), num_scales, hidden_channels=4).double()
    randomize_parameters(model, seed=seed, scale=0.2)
    x = torch.randn(2, channels, height, width, dtype=DOUBLE)
    z, _ = model(x)
    assert z.shape == x.shape
    assert check_invertible(model, x)
    if channels * height * width <= 16:
        assert check_log_det(model, x)


def test_three_scales_log_det():
    # 1x8x8 -> 4x4x4 -> (2x4x4) -> 8x2x2 -> (4x2x2): the last scale works on 2x2 pixels.
    model = digits_model(seed=1, num_scales=3)
    x = torch.randn(1, 1, 8, 8, dtype=DOUBLE)
    assert check_invertible(model, x)
    assert check_log_det(model, x)


def test_the_factored_out_half_is_untouched_by_later_scales():
    model = digits_model(seed=2)
    x = torch.randn(3, 1, 8, 8, dtype=DOUBLE, requires_grad=True)
    z, _ = model(x)
    factored, rest = model.split(z)
    assert factored.shape == rest.shape == (3, 2, 4, 4)

    # No gradient from the factored-out half reaches the inner scale's parameters ...
    factored.sum().backward()
    assert all(p.grad is None or not p.grad.any() for p in model.inner.parameters())
    assert any(p.grad is not None and p.grad.any() for p in model.transform.parameters())

    # ... so changing them leaves it, and its Jacobian rows, exactly as they were.
    x = x.detach()
    jac_before = jacobian(model, x[:1])
    randomize_parameters(model.inner, seed=99, scale=0.2)
    z_after, _ = model(x)
    factored_after, rest_after = model.split(z_after)
    assert torch.equal(factored_after, factored.detach())
    assert not torch.allclose(rest_after, rest.detach())
    jac_after = jacobian(model, x[:1])
    rows = model.split(torch.arange(64, dtype=DOUBLE).reshape(1, 1, 8, 8))[0].long().flatten()
    assert torch.equal(jac_after[0, rows], jac_before[0, rows])
    assert not torch.allclose(jac_after, jac_before)


def test_the_architecture_is_realnvps():
    model = realnvp_multiscale(1, 8, num_scales=2, hidden_channels=4)
    assert isinstance(model, MultiScale) and isinstance(model.inner, Compose)
    layers = list(model.transform)
    assert [type(layer) for layer in layers] == [AffineCoupling] * 3 + [Squeeze] + [
        AffineCoupling
    ] * 3
    for parity, layer in zip([0, 1, 0], layers[:3], strict=True):
        assert torch.equal(layer.mask, checkerboard_mask(8, 8, parity))
    channel_halves = [layer.mask.flatten().tolist() for layer in layers[4:]]
    first, second = [True, True, False, False], [False, False, True, True]
    assert channel_halves == [first, second, first]
    last = list(model.inner)
    assert len(last) == 4 and all(isinstance(layer, AffineCoupling) for layer in last)
    for parity, layer in zip([0, 1, 0, 1], last, strict=True):
        assert torch.equal(layer.mask, checkerboard_mask(4, 4, parity))
    assert last[0].conditioner[0].in_channels == 2  # the inner scale sees half the channels


def test_a_flow_on_8x8_digits_scores_and_samples():
    torch.manual_seed(0)
    flow = Flow(digits_model(seed=3), StandardNormal((1, 8, 8))).double()
    x = torch.randn(5, 1, 8, 8, dtype=DOUBLE)
    log_prob = flow.log_prob(x)
    assert log_prob.shape == (5,) and torch.isfinite(log_prob).all()
    samples, sample_log_prob = flow.sample_and_log_prob(4)
    assert samples.shape == (4, 1, 8, 8)
    assert torch.allclose(sample_log_prob, flow.log_prob(samples))


def test_state_dict_round_trip():
    original, restored = digits_model(seed=4), digits_model(seed=5)
    x = torch.randn(3, 1, 8, 8, dtype=DOUBLE)
    assert not torch.equal(original(x)[0], restored(x)[0])
    restored.load_state_dict(original.state_dict())
    z, log_abs_det = original(x)
    z_restored, log_abs_det_restored = restored(x)
    assert torch.equal(z, z_restored) and torch.equal(log_abs_det, log_abs_det_restored)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_size": 6, "num_scales": 3}, "divisible by 2\\*\\*\\(num_scales - 1\\) = 4"),
        ({"image_size": (8, 5), "num_scales": 2}, "height 8 and width 5"),
        ({"image_size": 2, "num_scales": 2}, "at least 2 pixels"),
        ({"image_size": 8, "num_scales": 0}, "num_scales"),
        ({"image_size": (8,), "num_scales": 1}, "image_size"),
        ({"image_size": 0, "num_scales": 1}, "image_size"),
        ({"image_size": 8, "in_channels": 0}, "in_channels"),
        ({"image_size": 8, "hidden_channels": 0}, "hidden_channels"),
    ],
)
def test_builder_rejects_sizes_it_cannot_build(kwargs, match):
    kwargs = {"in_channels": 1, **kwargs}
    with pytest.raises(ValueError, match="expected") as raised:
        realnvp_multiscale(**kwargs)
    assert raised.match(match)


def nan_image() -> torch.Tensor:
    x = torch.zeros(2, 1, 8, 8, dtype=DOUBLE)
    x[1, 0, 3, 3] = math.nan
    return x


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (torch.zeros(2, 1, 6, 6, dtype=DOUBLE), ValueError, r"\(batch, 1, 8, 8\).*\(2, 1, 6, 6\)"),
        (torch.zeros(2, 2, 8, 8, dtype=DOUBLE), ValueError, r"\(batch, 1, 8, 8\).*\(2, 2, 8, 8\)"),
        (torch.zeros(2, 64, dtype=DOUBLE), ValueError, r"\(batch, channels, height, width\)"),
        (torch.zeros(2, 1, 8, 8), TypeError, "dtype"),
        (nan_image(), ValueError, "finite"),
    ],
)
def test_bad_inputs_raise_saying_what_was_expected(bad, error, match):
    with pytest.raises(error, match="expected") as raised:
        digits_model()(bad)
    assert raised.match(match)


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        # The inverse meets the wrong size at the inner scale, and says so.
        (torch.zeros(2, 1, 6, 6, dtype=DOUBLE), ValueError, r"z of shape \(batch, 2, 4, 4"),
        (torch.zeros(1, 1, 7, 8, dtype=DOUBLE), ValueError, "even height and width"),
        (torch.zeros(2, 64, dtype=DOUBLE), ValueError, r"\(batch, channels, height, width\)"),
        (torch.zeros(2, 1, 8, 8), TypeError, "dtype"),
        (nan_image(), ValueError, "finite"),
    ],
)
def test_bad_noise_raises_saying_what_was_expected(bad, error, match):
    with pytest.raises(error, match="expected") as raised:
        digits_model().inverse(bad)
    assert raised.match(match)


def test_multiscale_needs_a_squeezing_transform():
    with pytest.raises(ValueError, match="must contain one Squeeze"):
        MultiScale(Compose())(torch.zeros(1, 2, 4, 4))
    with pytest.raises(TypeError, match="expected transform to be a Transform"):
        MultiScale(nn.Identity())
    with pytest.raises(TypeError, match="expected inner to be a Transform or None"):
        MultiScale(Compose(Squeeze()), nn.Identity())
