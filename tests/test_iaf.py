"""IAF layers (affine and gated) and the IAF posterior of a VAE."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from flowcourse.autoregressive import (
    GatedInverseAutoregressive,
    IAFPosterior,
    IAFPosteriorTransform,
    InverseAutoregressive,
    autoregressive_inverse,
    random_order,
)
from flowcourse.checks import (
    check_autoregressive,
    check_invertible,
    check_log_det,
    check_normalized,
)
from flowcourse.core import Compose, Flow, Inverse, StandardNormal, Transform
from tests.helpers import randomize_parameters

LAYERS = [InverseAutoregressive, GatedInverseAutoregressive]


pytestmark = pytest.mark.usefixtures("float64_by_default", "fixed_seed")


def typical_points(layer: Transform, z: torch.Tensor, context=None) -> torch.Tensor:
    with torch.no_grad():
        return layer.inverse(z, context=context)[0]


def random_layer(cls, features: int, seed: int, random_ordering: bool = True, **kwargs):
    order = random_order(features, seed) if random_ordering else None
    layer = cls(features, hidden_features=features + 3, order=order, **kwargs)
    return randomize_parameters(layer, seed=seed, scale=0.5)


# ----------------------------------------------------------------------------- layers


@pytest.mark.parametrize("cls", LAYERS)
@settings(max_examples=10, deadline=None)
@given(
    features=st.integers(1, 6),
    seed=st.integers(0, 10_000),
    random_ordering=st.booleans(),
    context_features=st.sampled_from([0, 2]),
)
def test_invertible_log_det_and_triangular(cls, features, seed, random_ordering, context_features):
    layer = random_layer(cls, features, seed, random_ordering, context_features=context_features)
    generator = torch.Generator().manual_seed(seed)
    z = 2 * torch.randn(5, features, generator=generator)
    # A different context for every sample: the checks pass row b of it with sample b.
    c = torch.randn(5, context_features, generator=generator) if context_features else None
    # Score points the layer produces: far from them the density direction, which divides
    # by scales and gates, can blow up (see the docstrings).
    x = typical_points(layer, z, c)
    assert check_invertible(Inverse(layer), z, atol=1e-10, context=c)
    assert check_invertible(layer, x, atol=1e-10, context=c)
    assert check_log_det(Inverse(layer), z, context=c)
    assert check_log_det(layer, x, context=c)
    assert check_autoregressive(Inverse(layer), z, layer.order, context=c)
    assert check_autoregressive(layer, x, layer.order, context=c)


def clear_loop_forward(layer, x, context=None):
    """IAF scoring as the clear loop: every pass maps all features, keeps one."""

    def solve(z):
        first, second = layer.made(z, context).chunk(2, dim=1)
        if isinstance(layer, GatedInverseAutoregressive):  # (proposal, gate logit)
            gate = torch.sigmoid(second)
            return (x - (1 - gate) * first) / gate, -F.logsigmoid(second).sum(dim=1)
        log_scale = layer.log_scale_bound * torch.tanh(second / layer.log_scale_bound)
        return (x - first) * torch.exp(-log_scale), -log_scale.sum(dim=1)

    return autoregressive_inverse(solve, x, layer.order)


@pytest.mark.parametrize("cls", LAYERS)
@pytest.mark.parametrize("features", [1, 2, 6])
@pytest.mark.parametrize("context_features", [0, 2])
@pytest.mark.parametrize("seed", [0, 1])
def test_forward_is_the_clear_loop(cls, features, context_features, seed):
    """The row-sliced forward (made_autoregressive_inverse) equals the clear loop."""
    layer = random_layer(cls, features, seed, context_features=context_features)
    generator = torch.Generator().manual_seed(seed)
    c = torch.randn(9, context_features, generator=generator) if context_features else None
    x = typical_points(layer, 2 * torch.randn(9, features, generator=generator), c)
    with torch.no_grad():
        z, log_abs_det = layer(x, context=c)
        expected_z, expected_log_abs_det = clear_loop_forward(layer, x, c)
    assert torch.allclose(z, expected_z, rtol=1e-12, atol=1e-12)
    assert torch.allclose(log_abs_det, expected_log_abs_det, rtol=1e-12, atol=1e-12)
    assert (x - z).abs().max() > 0.1  # the comparison is not between two identities
    # With autograd recording, the loop keeps the first layer's pre-activation instead.
    z, log_abs_det = layer(x, context=c)
    assert torch.allclose(z, expected_z, rtol=1e-12, atol=1e-12)
    assert torch.allclose(log_abs_det, expected_log_abs_det, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", LAYERS)
def test_forward_gradients_are_those_of_the_clear_loop(cls):
    """IAF trains through its D-pass direction when it scores given points: with autograd
    on, the gradients (parameters, data, context) equal the clear loop's."""
    layer = random_layer(cls, 5, seed=3, context_features=2)
    c = torch.randn(6, 2, requires_grad=True)
    x = typical_points(layer, torch.randn(6, 5), c).requires_grad_()
    inputs = [x, c, *layer.parameters()]

    def gradients(z, log_abs_det):
        return torch.autograd.grad((z.sin().sum() + log_abs_det.square().sum()), inputs)

    fast = gradients(*layer(x, context=c))
    clear = gradients(*clear_loop_forward(layer, x, c))
    for got, expected in zip(fast, clear, strict=True):
        assert torch.allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", LAYERS)
def test_checks_see_a_real_non_identity_map(cls):
    layer = random_layer(cls, 4, seed=1)
    z = torch.randn(6, 4)
    x, log_abs_det = layer.inverse(z)
    assert (x - z).abs().max() > 0.1 and log_abs_det.abs().max() > 0.1
    assert not check_autoregressive(Inverse(layer), z, layer.order.flip(0))


def test_affine_iaf_sampling_is_the_paper_formula():
    layer = random_layer(InverseAutoregressive, 3, seed=2)
    z = torch.randn(4, 3)
    shift, raw = layer.made(z).chunk(2, dim=1)
    log_scale = 3.0 * torch.tanh(raw / 3.0)
    x, log_abs_det = layer.inverse(z)
    assert torch.allclose(x, z * torch.exp(log_scale) + shift)
    assert torch.allclose(log_abs_det, log_scale.sum(dim=1))


def test_gated_iaf_sampling_is_algorithm_1():
    layer = random_layer(GatedInverseAutoregressive, 3, seed=3)
    z = torch.randn(4, 3)
    proposal, gate_logit = layer.made(z).chunk(2, dim=1)
    gate = torch.sigmoid(gate_logit)
    x, log_abs_det = layer.inverse(z)
    assert torch.allclose(x, gate * z + (1 - gate) * proposal)
    assert torch.allclose(log_abs_det, torch.log(gate).sum(dim=1))


def test_fresh_layers():
    z = torch.randn(5, 4)
    x, log_abs_det = InverseAutoregressive(4, hidden_features=5).inverse(z)
    assert torch.equal(x, z) and torch.equal(log_abs_det, torch.zeros(5))
    # The gate starts at sigmoid(gate_bias), near 1, and the proposal at zero.
    x, log_abs_det = GatedInverseAutoregressive(4, hidden_features=5, gate_bias=1.5).inverse(z)
    assert torch.allclose(x, torch.sigmoid(torch.tensor(1.5)) * z)
    assert torch.allclose(log_abs_det, torch.full((5,), 4 * F.logsigmoid(torch.tensor(1.5))))


@pytest.mark.parametrize("cls", LAYERS)
def test_flow_of_iafs_is_consistent_when_sampling(cls):
    flow = Flow(Compose(*[random_layer(cls, 3, seed=s) for s in range(3)]), StandardNormal(3))
    torch.manual_seed(0)
    x, log_prob = flow.double().sample_and_log_prob(8)
    assert torch.allclose(log_prob, flow.log_prob(x), atol=1e-10)


@pytest.mark.parametrize("cls", LAYERS)
def test_state_dict_round_trip_gives_identical_log_dets(cls):
    layer = random_layer(cls, 5, seed=4, context_features=2)
    other = cls(5, hidden_features=8, seed=77, context_features=2)
    other.load_state_dict(layer.state_dict())
    z, context = torch.randn(6, 5), torch.randn(6, 2)
    assert torch.equal(other.inverse(z, context)[1], layer.inverse(z, context)[1])
    assert torch.equal(other(z, context)[0], layer(z, context)[0])


@pytest.mark.parametrize("cls", LAYERS)
def test_float32(cls):
    layer = random_layer(cls, 4, seed=6).float()
    z = torch.randn(5, 4, dtype=torch.float32)
    x = typical_points(layer, z)
    assert check_invertible(layer, x)
    assert check_log_det(layer, x)
    assert check_log_det(Inverse(layer), z)


BAD_INPUTS = [
    ([[0.0, 1.0, 2.0]], TypeError),
    (torch.zeros(2, 4), ValueError),
    (torch.zeros(3), ValueError),
    (torch.tensor([[0.0, math.nan, 0.0]]), ValueError),
    (torch.zeros(2, 3, dtype=torch.float32), TypeError),
    (torch.zeros(2, 3, dtype=torch.int64), TypeError),
]


@pytest.mark.parametrize("cls", LAYERS)
@pytest.mark.parametrize("direction", ["forward", "inverse"])
@pytest.mark.parametrize(("bad", "error"), BAD_INPUTS)
def test_bad_input_raises(cls, direction, bad, error):
    layer = cls(3, hidden_features=4)
    with pytest.raises(error, match="expected"):
        getattr(layer, direction)(bad)


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (InverseAutoregressive, {"features": 0}),
        (InverseAutoregressive, {"features": 3, "log_scale_bound": -1.0}),
        (GatedInverseAutoregressive, {"features": 3, "gate_bias": math.nan}),
        (GatedInverseAutoregressive, {"features": 4, "hidden_features": 2}),
    ],
)
def test_bad_construction_raises(cls, kwargs):
    with pytest.raises(ValueError, match="expected"):
        cls(**kwargs)


@pytest.mark.parametrize("cls", LAYERS)
def test_a_conditional_layer_refuses_to_run_without_its_context(cls):
    layer = cls(3, hidden_features=4, context_features=2)
    with pytest.raises(ValueError, match=r"expected a context of shape \(batch, 2\)"):
        layer(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="expected one context row per sample"):
        layer.inverse(torch.zeros(4, 3), context=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="expected no context"):
        cls(3, hidden_features=4).inverse(torch.zeros(4, 3), context=torch.zeros(4, 2))


# ----------------------------------------------------------------------------- posterior


def random_posterior(latent_features: int = 3, num_flows: int = 2, seed: int = 0) -> IAFPosterior:
    posterior = IAFPosterior(
        data_features=4,
        latent_features=latent_features,
        hidden_features=6,
        num_flows=num_flows,
        h_features=3,
    )
    return randomize_parameters(posterior, seed=seed, scale=0.4)


def test_the_posterior_is_a_conditional_flow_over_latents_given_data():
    posterior = random_posterior()
    assert isinstance(posterior, Flow) and posterior.context_features == 4
    assert isinstance(posterior.transform, IAFPosteriorTransform)
    x = torch.randn(6, 4)
    torch.manual_seed(0)
    z, log_q = posterior.sample_and_log_prob(6, context=x)
    assert z.shape == (6, 3) and log_q.shape == (6,)
    assert posterior.sample(6, context=x).shape == (6, 3)
    with pytest.raises(ValueError, match=r"one context row per sample \(5\)"):
        posterior.sample(5, context=x)


@settings(max_examples=10, deadline=None)
@given(latent_features=st.integers(1, 4), num_flows=st.integers(0, 3), seed=st.integers(0, 999))
def test_log_q_matches_the_jacobian_of_noise_to_latent(latent_features, num_flows, seed):
    """log q(z|x) = log N(eps) - log|det dz/deps|, with the Jacobian from autograd."""
    posterior = random_posterior(latent_features, num_flows, seed)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 4, generator=generator)
    noise = torch.randn(3, latent_features, generator=generator)
    h = posterior.encoder(x)  # the encoder's (mu, log_sigma, h): the transform's context
    with torch.no_grad():
        _, log_abs_det = posterior.transform.inverse(noise, context=h)
        log_q = posterior.base.log_prob(noise) - log_abs_det
    for b in range(3):
        jac = torch.autograd.functional.jacobian(
            lambda e, b=b: posterior.transform.inverse(e[None], context=h[b : b + 1])[0][0],
            noise[b],
        )
        gaussian = -0.5 * (noise[b] ** 2).sum() - 0.5 * latent_features * math.log(2 * math.pi)
        reference = gaussian - torch.linalg.slogdet(jac).logabsdet
        assert abs(float(log_q[b] - reference)) < 1e-10


def test_log_prob_inverts_sampling_and_integrates_to_one():
    posterior = random_posterior(latent_features=2, num_flows=2, seed=1)
    x = torch.randn(3, 4).repeat(4, 1)  # four latents for each of three data points
    torch.manual_seed(0)
    z, log_q = posterior.sample_and_log_prob(12, context=x)
    assert torch.allclose(posterior.log_prob(z, context=x), log_q, atol=1e-10)
    with torch.no_grad():
        mu = posterior.encode(x[:1])[0]
    center = float(mu.abs().max())
    density = posterior_density(posterior, x[:1])
    assert check_normalized(density, bounds=(-8 - center, 8 + center), resolution=160)


def posterior_density(posterior: IAFPosterior, x: torch.Tensor):
    return lambda z: posterior.log_prob(z, context=x.expand(z.shape[0], -1))


def test_sampling_is_reparametrised():
    posterior = random_posterior(seed=2)
    torch.manual_seed(1)
    z, log_q = posterior.sample_and_log_prob(10, context=torch.randn(10, 4))
    (z.square().sum() + log_q.sum()).backward()
    for name, parameter in posterior.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_context_reaches_every_latent():
    posterior = random_posterior(seed=3)
    noise = torch.randn(1, 3)

    def latent_from_context(h: torch.Tensor) -> torch.Tensor:
        z = noise
        for step in posterior.steps:
            z, _ = step.inverse(z, context=h)
        return z.reshape(-1)

    jac = torch.autograd.functional.jacobian(latent_from_context, torch.randn(1, 3))
    assert torch.all(jac.abs().sum(dim=(1, 2)) > 0)


def test_orderings_alternate_and_shapes():
    posterior = IAFPosterior(4, latent_features=3, hidden_features=5, num_flows=3)
    assert [step.order.tolist() for step in posterior.steps] == [[1, 2, 3], [3, 2, 1], [1, 2, 3]]
    z, log_q = posterior.sample_and_log_prob(10, context=torch.randn(2, 4).repeat(5, 1))
    assert z.shape == (10, 3) and log_q.shape == (10,)


def test_fresh_posterior_is_a_shrunk_standard_normal():
    posterior = IAFPosterior(4, latent_features=3, hidden_features=5, num_flows=2)
    noise = torch.randn(6, 3)
    z, log_abs_det = posterior.transform.inverse(
        noise, context=posterior.encoder(torch.randn(6, 4))
    )
    gate_log = float(F.logsigmoid(torch.tensor(2.0)))
    assert torch.allclose(z, math.exp(2 * gate_log) * noise)
    assert torch.allclose(log_abs_det, torch.full((6,), 2 * 3 * gate_log))


def test_posterior_state_dict_round_trip():
    posterior = random_posterior(seed=4)
    other = IAFPosterior(4, 3, hidden_features=6, num_flows=2, h_features=3, seed=9)
    other.load_state_dict(posterior.state_dict())
    x, z = torch.randn(2, 4), torch.randn(2, 3)
    assert torch.equal(other.log_prob(z, context=x), posterior.log_prob(z, context=x))


def test_posterior_bad_inputs_raise():
    posterior = IAFPosterior(4, latent_features=3, hidden_features=5)
    x, z = torch.zeros(2, 4), torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"expected context of shape \(batch, 4\)"):
        posterior.sample_and_log_prob(2, context=torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"expected a context of shape \(batch, 4\)"):
        posterior.sample_and_log_prob(2)
    with pytest.raises(TypeError, match="expected"):
        posterior.sample_and_log_prob(2, context=x.float())
    with pytest.raises(ValueError, match="expected num_samples"):
        posterior.sample_and_log_prob(0, context=x)
    with pytest.raises(ValueError, match="expected one context row per sample"):
        posterior.log_prob(torch.zeros(3, 3), context=x)
    with pytest.raises(ValueError, match=r"expected x of shape \(batch, 3\)"):
        posterior.log_prob(torch.zeros(2, 2), context=x)
    # The transform's context is the encoder's (mu, log_sigma, h): 3 + 3 + 16 values.
    with pytest.raises(ValueError, match=r"expected a context of shape \(batch, 22\) for"):
        posterior.transform(z)
    with pytest.raises(ValueError, match="expected latent_features"):
        IAFPosterior(4, latent_features=0)
    with pytest.raises(ValueError, match="expected every hidden layer"):
        IAFPosterior(4, latent_features=8, hidden_features=4)
