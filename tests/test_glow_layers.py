"""ActNorm and the invertible 1x1 convolutions (Glow, Sec. 3.1-3.2)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flowcourse.checks import check_invertible, check_log_det, jacobian
from flowcourse.core import Flow, StandardNormal
from flowcourse.glow import ActNorm, Invertible1x1Conv, LUInvertible1x1Conv, random_rotation
from tests.helpers import randomize_parameters

DOUBLE = torch.float64
CONVOLUTIONS = [Invertible1x1Conv, LUInvertible1x1Conv]


def initialized_actnorm(channels: int, shape: tuple[int, ...], seed: int = 0) -> ActNorm:
    """An ActNorm initialised on a shifted, scaled batch, then given random parameters."""
    layer = ActNorm(channels).double()
    generator = torch.Generator().manual_seed(seed)
    layer(2.0 + 3.0 * torch.randn(16, channels, *shape, generator=generator, dtype=DOUBLE))
    return randomize_parameters(layer, seed=seed)


# ---------------------------------------------------------------------------- ActNorm


@settings(max_examples=15, deadline=None)
@given(
    channels=st.integers(1, 5),
    spatial=st.sampled_from([(), (1, 1), (3, 2), (4, 4)]),
    batch=st.integers(2, 9),
    seed=st.integers(0, 10_000),
)
def test_actnorm_initialises_to_zero_mean_unit_variance(channels, spatial, batch, seed):
    generator = torch.Generator().manual_seed(seed)
    scale = torch.rand(channels, *([1] * len(spatial)), generator=generator, dtype=DOUBLE) * 5
    x = 4.0 + scale * torch.randn(batch, channels, *spatial, generator=generator, dtype=DOUBLE)
    layer = ActNorm(channels).double()
    assert not layer.initialized
    z, _ = layer(x)
    assert layer.initialized
    per_channel = z.transpose(0, 1).reshape(channels, -1)
    assert per_channel.mean(dim=1).abs().max() < 1e-10
    assert (per_channel.var(dim=1, unbiased=False) - 1).abs().max() < 1e-8


@settings(max_examples=10, deadline=None)
@given(
    channels=st.integers(1, 4),
    spatial=st.sampled_from([(), (2, 3), (4, 4)]),
    seed=st.integers(0, 10_000),
)
def test_actnorm_inverts_and_log_det_matches_autograd(channels, spatial, seed):
    layer = initialized_actnorm(channels, spatial, seed)
    x = torch.randn(3, channels, *spatial, dtype=DOUBLE)
    assert check_invertible(layer, x)
    result = check_log_det(layer, x)
    assert result, result.message
    _, log_abs_det = layer(x)
    expected = math.prod(spatial) * layer.log_scale.sum()
    assert torch.allclose(log_abs_det, expected.expand(3))


def test_actnorm_log_det_is_not_trivially_zero():
    layer = initialized_actnorm(2, (3, 3))
    _, log_abs_det = layer(torch.randn(2, 2, 3, 3, dtype=DOUBLE))
    assert log_abs_det.abs().min() > 1e-3


def test_actnorm_initialises_only_once():
    layer = ActNorm(3).double()
    layer(torch.randn(10, 3, dtype=DOUBLE))
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    layer(100 + 7 * torch.randn(10, 3, dtype=DOUBLE))  # very different statistics
    for key, value in layer.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_actnorm_first_forward_is_differentiable():
    layer = ActNorm(2).double()
    z, log_abs_det = layer(torch.randn(8, 2, dtype=DOUBLE))
    (z.square().sum() - log_abs_det.sum()).backward()
    assert layer.bias.grad is not None and layer.log_scale.grad is not None
    assert layer.log_scale.grad.abs().sum() > 0


def test_actnorm_constant_channel_stays_finite():
    x = torch.randn(6, 2, dtype=DOUBLE)
    x[:, 1] = 5.0
    layer = ActNorm(2).double()
    z, log_abs_det = layer(x)
    assert torch.isfinite(z).all() and torch.isfinite(log_abs_det).all()


def test_actnorm_inverse_before_initialisation_raises():
    layer = ActNorm(2)
    with pytest.raises(RuntimeError, match="forward"):
        layer.inverse(torch.zeros(3, 2))
    assert not layer.initialized


def test_actnorm_eval_forward_before_initialisation_raises():
    layer = ActNorm(2).eval()
    with pytest.raises(RuntimeError, match="training mode"):
        layer(torch.zeros(3, 2))
    assert not layer.initialized


def test_actnorm_refuses_to_initialise_on_one_vector():
    layer = ActNorm(3)
    with pytest.raises(ValueError, match="expected at least 2 values per channel"):
        layer(torch.randn(1, 3))
    assert not layer.initialized
    layer(torch.randn(1, 3, 2, 2))  # one image has four values per channel: fine
    assert layer.initialized


def test_actnorm_state_dict_round_trip_keeps_the_flag():
    trained = initialized_actnorm(3, (4, 4))
    state = trained.state_dict()
    assert "initialized" in state and bool(state["initialized"])
    fresh = ActNorm(3).double()
    fresh.load_state_dict(state)
    assert fresh.initialized
    x = 10 + torch.randn(5, 3, 4, 4, dtype=DOUBLE)  # would change the layer if it re-initialised
    z_trained, log_abs_det_trained = trained(x)
    z_fresh, log_abs_det_fresh = fresh(x)
    assert torch.equal(z_trained, z_fresh) and torch.equal(log_abs_det_trained, log_abs_det_fresh)
    assert torch.equal(
        Flow(trained, StandardNormal((3, 4, 4))).log_prob(x),
        Flow(fresh, StandardNormal((3, 4, 4))).log_prob(x),
    )
    assert torch.equal(fresh.inverse(z_fresh)[0], trained.inverse(z_trained)[0])
    assert torch.equal(fresh.state_dict()["bias"], state["bias"])


def test_actnorm_flag_survives_dtype_change():
    layer = ActNorm(2)
    layer(torch.randn(4, 2))
    layer = layer.to(torch.float64)
    assert layer.initialized and layer.initialized.dtype == torch.bool
    assert layer.bias.dtype == DOUBLE
    layer.inverse(torch.randn(3, 2, dtype=DOUBLE))  # still initialised: no error


def test_actnorm_train_and_eval_agree_after_initialisation():
    layer = initialized_actnorm(2, (3, 3))
    x = torch.randn(4, 2, 3, 3, dtype=DOUBLE)
    # Evaluation first: re-initialising on x in training mode would go unseen by a later eval.
    z_eval, log_abs_det_eval = layer.eval()(x)
    z_train, log_abs_det_train = layer.train()(x)
    assert torch.equal(z_train, z_eval) and torch.equal(log_abs_det_train, log_abs_det_eval)


# ---------------------------------------------------------------------------- 1x1 convolutions


@pytest.mark.parametrize("layer_class", CONVOLUTIONS)
@settings(max_examples=10, deadline=None)
@given(
    channels=st.integers(1, 5),
    spatial=st.sampled_from([(), (1, 1), (2, 3), (3, 3)]),
    seed=st.integers(0, 10_000),
)
def test_conv1x1_inverts_and_log_det_matches_autograd(layer_class, channels, spatial, seed):
    layer = randomize_parameters(layer_class(channels, seed=seed).double(), seed=seed)
    x = torch.randn(3, channels, *spatial, dtype=DOUBLE)
    assert check_invertible(layer, x)
    result = check_log_det(layer, x)
    assert result, result.message


@pytest.mark.parametrize("layer_class", CONVOLUTIONS)
@settings(max_examples=10, deadline=None)
@given(channels=st.integers(1, 4), height=st.integers(1, 3), width=st.integers(1, 3))
def test_conv1x1_jacobian_is_block_diagonal_across_pixels(layer_class, channels, height, width):
    layer = randomize_parameters(layer_class(channels).double(), seed=channels)
    x = torch.randn(2, channels, height, width, dtype=DOUBLE)
    pixels = height * width
    # Flattened in (C, H, W) order: J[c, p, c', p'] = dz[c, p] / dx[c', p'].
    jac = jacobian(layer, x).reshape(2, channels, pixels, channels, pixels)
    weight = layer.weight.detach()
    for p in range(pixels):
        for q in range(pixels):
            block = jac[:, :, p, :, q]
            if p == q:
                assert torch.allclose(block, weight.expand_as(block))
            else:
                assert block.abs().max() == 0, f"pixel {q} leaks into pixel {p}"


@pytest.mark.parametrize("layer_class", CONVOLUTIONS)
def test_conv1x1_starts_as_a_rotation(layer_class):
    layer = layer_class(6, seed=3).double()
    weight = layer.weight.detach()
    assert torch.allclose(weight @ weight.T, torch.eye(6, dtype=DOUBLE), atol=1e-6)
    assert torch.allclose(weight, random_rotation(6, seed=3).double(), atol=1e-6)
    _, log_abs_det = layer(torch.randn(2, 6, 3, 3, dtype=DOUBLE))
    assert log_abs_det.abs().max() < 1e-5
    other = layer_class(6, seed=4).double().weight.detach()
    assert not torch.allclose(weight, other)


@settings(max_examples=10, deadline=None)
@given(channels=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_random_rotation_is_a_rotation(channels, seed):
    q = random_rotation(channels, seed).double()
    assert torch.allclose(q @ q.T, torch.eye(channels, dtype=DOUBLE), atol=1e-5)
    assert abs(float(torch.det(q)) - 1) < 1e-4
    assert torch.equal(random_rotation(channels, seed), random_rotation(channels, seed))


@settings(max_examples=15, deadline=None)
@given(channels=st.integers(1, 6), seed=st.integers(0, 10_000), size=st.integers(1, 4))
def test_lu_weight_is_p_l_u_and_log_det_is_cheap(channels, seed, size):
    layer = randomize_parameters(LUInvertible1x1Conv(channels, seed=seed).double(), seed=seed)
    P, L, U = layer.permutation, layer.lower_triangular, layer.upper_triangular
    s = layer.sign_s * layer.log_abs_s.exp()
    eye = torch.eye(channels, dtype=DOUBLE)
    # P is a permutation matrix, L unit lower triangular, U + diag(s) upper triangular.
    assert torch.equal(P @ P.T, eye) and set(P.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(L, torch.tril(L)) and torch.equal(
        L.diagonal(), torch.ones(channels, dtype=DOUBLE)
    )
    assert torch.equal(U, torch.triu(U)) and torch.allclose(U.diagonal(), s)
    assert torch.allclose(layer.weight, P @ L @ U)
    # log|det W| from the diagonal agrees with slogdet, times the number of pixels.
    _, log_abs_det = layer(torch.randn(2, channels, size, size, dtype=DOUBLE))
    expected = size * size * torch.linalg.slogdet(layer.weight).logabsdet
    assert torch.allclose(log_abs_det, expected.expand(2))
    assert torch.allclose(layer.inverse_weight @ layer.weight, eye)


def test_lu_ignores_parameter_entries_outside_the_triangles():
    layer = randomize_parameters(LUInvertible1x1Conv(4).double())
    x = torch.randn(3, 4, 2, 2, dtype=DOUBLE)
    z, log_abs_det = layer(x)
    with torch.no_grad():
        layer.lower.add_(torch.triu(torch.ones(4, 4, dtype=DOUBLE)))  # diagonal and above
        layer.upper.add_(torch.tril(torch.ones(4, 4, dtype=DOUBLE)))  # diagonal and below
    z_after, log_abs_det_after = layer(x)
    assert torch.equal(z, z_after) and torch.equal(log_abs_det, log_abs_det_after)


def test_lu_buffers_are_registered():
    layer = LUInvertible1x1Conv(3)
    buffers = dict(layer.named_buffers())
    for name in ("permutation", "sign_s", "lower_mask", "upper_mask"):
        assert name in buffers and name in layer.state_dict()
    assert {name for name, _ in layer.named_parameters()} == {"lower", "upper", "log_abs_s"}
    assert layer.double().permutation.dtype == DOUBLE


@pytest.mark.parametrize("layer_class", CONVOLUTIONS)
def test_conv1x1_state_dict_round_trip(layer_class):
    trained = randomize_parameters(layer_class(4, seed=1).double(), seed=5)
    fresh = layer_class(4, seed=2).double()
    x = torch.randn(3, 4, 3, 3, dtype=DOUBLE)
    assert not torch.allclose(trained(x)[0], fresh(x)[0])
    fresh.load_state_dict(trained.state_dict())
    z_trained, log_abs_det_trained = trained(x)
    z_fresh, log_abs_det_fresh = fresh(x)
    assert torch.equal(z_trained, z_fresh) and torch.equal(log_abs_det_trained, log_abs_det_fresh)
    assert torch.equal(trained.inverse(z_trained)[0], fresh.inverse(z_fresh)[0])


@pytest.mark.parametrize("layer_class", CONVOLUTIONS)
def test_conv1x1_treats_vectors_like_one_pixel(layer_class):
    layer = randomize_parameters(layer_class(3).double())
    x = torch.randn(4, 3, dtype=DOUBLE)
    z, log_abs_det = layer(x)
    z_image, log_abs_det_image = layer(x.reshape(4, 3, 1, 1))
    assert torch.allclose(z, z_image.reshape(4, 3)) and torch.allclose(
        log_abs_det, log_abs_det_image
    )


# ---------------------------------------------------------------------------- bad input

LAYERS = [ActNorm, Invertible1x1Conv, LUInvertible1x1Conv]


def ready(layer_class: type, channels: int = 2) -> torch.nn.Module:
    layer = layer_class(channels).double()
    if isinstance(layer, ActNorm):
        layer(torch.randn(4, channels, dtype=DOUBLE))
    return layer


NAN_IMAGE = torch.zeros(2, 2, 3, 3, dtype=DOUBLE)
NAN_IMAGE[1, 0, 2, 1] = float("nan")


@pytest.mark.parametrize("layer_class", LAYERS)
@pytest.mark.parametrize("direction", ["forward", "inverse"])
@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (torch.zeros(2, 3, 3, 3, dtype=DOUBLE), ValueError),  # wrong number of channels
        (torch.zeros(2, 3, dtype=DOUBLE), ValueError),
        (torch.zeros(2, 2, 3, dtype=DOUBLE), ValueError),  # neither a vector nor an image
        (torch.zeros(2, dtype=DOUBLE), ValueError),
        (NAN_IMAGE, ValueError),
        (torch.tensor([[float("inf"), 0.0]], dtype=DOUBLE), ValueError),
        (torch.zeros(2, 2, 3, 3, dtype=torch.float32), TypeError),  # the module is float64
        (torch.zeros(2, 2, dtype=torch.int64), TypeError),
        ([[0.0, 1.0]], TypeError),
    ],
)
def test_bad_input_raises_with_expected(layer_class, direction, bad, error):
    layer = ready(layer_class)
    method = layer if direction == "forward" else layer.inverse
    with pytest.raises(error, match="expected"):
        method(bad)


@pytest.mark.parametrize("layer_class", LAYERS)
@pytest.mark.parametrize(
    ("argument", "error"), [(0, ValueError), (-2, ValueError), (2.0, TypeError), (True, TypeError)]
)
def test_bad_constructor_arguments_raise(layer_class, argument, error):
    with pytest.raises(error, match="expected"):
        layer_class(argument)
