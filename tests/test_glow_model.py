"""The Glow step and the small multi-scale Glow (Kingma & Dhariwal 2018)."""

from __future__ import annotations

import functools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flowcourse.checks import check_invertible, check_log_det
from flowcourse.core import Flow, StandardNormal
from flowcourse.coupling import AdditiveCoupling, AffineCoupling, Squeeze
from flowcourse.glow import (
    ActNorm,
    GlowStep,
    Invertible1x1Conv,
    LUInvertible1x1Conv,
    glow_multiscale,
)
from flowcourse.permutations import RandomPermutation, ReversePermutation
from tests.helpers import randomize_parameters

DOUBLE = torch.float64


PERMUTATIONS = {
    "lu": LUInvertible1x1Conv,
    "full": Invertible1x1Conv,
    "reverse": ReversePermutation,
    "random": functools.partial(RandomPermutation, seed=3),
}
COUPLINGS = {"affine": AffineCoupling.for_images, "additive": AdditiveCoupling.for_images}


def ready(transform: torch.nn.Module, x: torch.Tensor, seed: int = 0) -> torch.nn.Module:
    """Initialise every ActNorm on ``x`` (training mode), then randomise all parameters.

    The scale is small because every conv weight is redrawn: at 0.3 a few steps already
    stretch values by 1e5, a test of round-off rather than of the layers. At 0.1 each
    coupling still changes the log-density by several nats.
    """
    transform.train()(x)
    assert all(m.initialized for m in transform.modules() if isinstance(m, ActNorm))
    return randomize_parameters(transform, seed=seed, scale=0.1)


def small_glow(**kwargs) -> torch.nn.Module:
    options = {"num_scales": 2, "steps_per_scale": 2, "hidden_channels": 8} | kwargs
    return glow_multiscale(**options).double()


# ---------------------------------------------------------------------------- GlowStep


@settings(max_examples=12, deadline=None)
@given(
    channels=st.sampled_from([2, 4, 6]),
    size=st.integers(1, 3),
    permutation=st.sampled_from(sorted(PERMUTATIONS)),
    coupling=st.sampled_from(sorted(COUPLINGS)),
    seed=st.integers(0, 10_000),
)
def test_glow_step_inverts_and_log_det_matches_autograd(
    channels, size, permutation, coupling, seed
):
    step = GlowStep(channels, 8, PERMUTATIONS[permutation], COUPLINGS[coupling]).double()
    x = torch.randn(6, channels, size, size, dtype=DOUBLE)
    ready(step, 1.5 + 2 * x, seed)
    assert check_invertible(step, x[:3])
    result = check_log_det(step, x[:2])
    assert result, result.message


def test_glow_step_is_actnorm_then_permutation_then_coupling():
    step = ready(GlowStep(4, 8).double(), torch.randn(5, 4, 3, 3, dtype=DOUBLE))
    assert isinstance(step.actnorm, ActNorm)
    assert isinstance(step.permutation, LUInvertible1x1Conv)
    assert isinstance(step.coupling, AffineCoupling)
    assert step.coupling.mask.flatten().tolist() == [True, True, False, False]
    x = torch.randn(3, 4, 3, 3, dtype=DOUBLE)
    h, log_abs_det_1 = step.actnorm(x)
    u, log_abs_det_2 = step.permutation(h)
    z, log_abs_det_3 = step.coupling(u)
    z_step, log_abs_det = step(x)
    assert torch.equal(z_step, z)
    assert torch.allclose(log_abs_det, log_abs_det_1 + log_abs_det_2 + log_abs_det_3)
    assert log_abs_det_3.abs().min() > 1e-6  # the affine coupling changes volume


def test_glow_step_additive_coupling_preserves_volume():
    step = ready(
        GlowStep(4, 8, coupling=AdditiveCoupling.for_images).double(),
        torch.randn(5, 4, 2, 2, dtype=DOUBLE),
    )
    x = torch.randn(3, 4, 2, 2, dtype=DOUBLE)
    _, log_abs_det = step(x)
    # Only ActNorm and the 1x1 convolution change volume, the same for every sample.
    expected = 4 * (step.actnorm.log_scale.sum() + step.permutation.log_abs_s.sum())
    assert torch.allclose(log_abs_det, expected.expand(3))


def test_fresh_glow_step_whitens_its_first_batch():
    x = 3 + 2 * torch.randn(64, 2, 4, 4, dtype=DOUBLE)
    step = GlowStep(2, 8).double()
    z, _ = step(x)
    # ActNorm whitens; a rotation and an identity coupling keep zero mean.
    assert z.mean(dim=(0, 2, 3)).abs().max() < 1e-10


def test_glow_step_state_dict_round_trip():
    x = torch.randn(5, 4, 3, 3, dtype=DOUBLE)
    trained = ready(GlowStep(4, 8).double(), x, seed=1)
    fresh = GlowStep(4, 8).double()
    fresh.load_state_dict(trained.state_dict())
    assert fresh.actnorm.initialized
    new = 5 + torch.randn(4, 4, 3, 3, dtype=DOUBLE)  # would re-initialise a fresh ActNorm
    z, log_abs_det = trained(new)
    z_fresh, log_abs_det_fresh = fresh(new)
    assert torch.equal(z, z_fresh) and torch.equal(log_abs_det, log_abs_det_fresh)
    assert torch.equal(fresh.inverse(z)[0], trained.inverse(z)[0])


@pytest.mark.parametrize("channels", [1, 3, 5, 0])
def test_glow_step_needs_an_even_number_of_channels(channels):
    with pytest.raises(ValueError, match="expected"):
        GlowStep(channels)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"channels": 2.0}, TypeError),
        ({"channels": 4, "hidden_channels": 0}, ValueError),
        ({"channels": 4, "permutation": "lu"}, TypeError),  # no string switches
        ({"channels": 4, "coupling": None}, TypeError),
        ({"channels": 4, "permutation": lambda c: torch.eye(c)}, TypeError),
    ],
)
def test_glow_step_bad_arguments_raise(kwargs, error):
    with pytest.raises(error, match="expected"):
        GlowStep(**kwargs)


NAN_IMAGE = torch.zeros(2, 4, 2, 2, dtype=DOUBLE)
NAN_IMAGE[0, 3, 1, 1] = float("nan")


@pytest.mark.parametrize("direction", ["forward", "inverse"])
@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (torch.zeros(2, 2, 2, 2, dtype=DOUBLE), ValueError),  # wrong number of channels
        (torch.zeros(2, 4, dtype=DOUBLE), ValueError),  # a vector, not an image
        (NAN_IMAGE, ValueError),
        (torch.zeros(2, 4, 2, 2, dtype=torch.float32), TypeError),
        (torch.zeros(2, 4, 2, 2, dtype=torch.int32), TypeError),
    ],
)
def test_glow_step_bad_input_raises(direction, bad, error):
    step = ready(GlowStep(4, 8).double(), torch.randn(3, 4, 2, 2, dtype=DOUBLE))
    with pytest.raises(error, match="expected"):
        (step if direction == "forward" else step.inverse)(bad)


def test_untrained_glow_step_refuses_to_sample():
    with pytest.raises(RuntimeError, match="forward"):
        GlowStep(2, 8).inverse(torch.zeros(1, 2, 2, 2))


# ---------------------------------------------------------------------------- multi-scale Glow


@pytest.mark.parametrize("permutation", ["lu", "reverse"])
@pytest.mark.parametrize("coupling", ["affine", "additive"])
def test_glow_multiscale_on_digits_inverts_and_log_det_matches_autograd(permutation, coupling):
    model = small_glow(permutation=PERMUTATIONS[permutation], coupling=COUPLINGS[coupling])
    x = torch.rand(16, 1, 8, 8, dtype=DOUBLE)
    ready(model, x, seed=7)
    z, _ = model(x)
    assert z.shape == x.shape
    assert check_invertible(model, x)
    result = check_log_det(model, x[:1])  # one 64x64 Jacobian: the costly part
    assert result, result.message


@settings(max_examples=8, deadline=None)
@given(
    in_channels=st.integers(1, 2),
    num_scales=st.integers(1, 2),
    steps=st.integers(1, 2),
    seed=st.integers(0, 10_000),
)
def test_glow_multiscale_shapes_and_log_det(in_channels, num_scales, steps, seed):
    size = 2**num_scales  # the smallest image each depth accepts: a cheap Jacobian
    model = small_glow(
        in_channels=in_channels, image_size=size, num_scales=num_scales, steps_per_scale=steps
    )
    x = torch.randn(4, in_channels, size, size, dtype=DOUBLE)
    ready(model, x, seed)
    z, log_abs_det = model(x)
    assert z.shape == x.shape and log_abs_det.shape == (4,)
    assert check_invertible(model, x)
    result = check_log_det(model, x[:2])
    assert result, result.message


def test_glow_multiscale_structure():
    model = glow_multiscale(1, 8, num_scales=3, steps_per_scale=4, hidden_channels=8)
    steps = [m for m in model.modules() if isinstance(m, GlowStep)]
    assert [s.channels for s in steps] == [4] * 4 + [8] * 4 + [16] * 4
    assert sum(isinstance(m, Squeeze) for m in model.modules()) == 3
    assert all(isinstance(s.permutation, LUInvertible1x1Conv) for s in steps)


def test_glow_multiscale_rectangular_images():
    model = small_glow(in_channels=1, image_size=(4, 8))
    x = torch.randn(3, 1, 4, 8, dtype=DOUBLE)
    ready(model, x)
    assert check_invertible(model, x)


def test_glow_flow_scores_samples_consistently():
    model = small_glow()
    ready(model, torch.rand(32, 1, 8, 8, dtype=DOUBLE), seed=2)
    flow = Flow(model, StandardNormal((1, 8, 8))).double()
    torch.manual_seed(0)
    x, log_prob = flow.sample_and_log_prob(5)
    assert x.shape == (5, 1, 8, 8)
    assert torch.allclose(log_prob, flow.log_prob(x), atol=1e-8)


def test_glow_multiscale_state_dict_round_trip_and_modes():
    x = torch.rand(16, 1, 8, 8, dtype=DOUBLE)
    trained = ready(small_glow(), x, seed=4)
    fresh = small_glow()
    fresh.load_state_dict(trained.state_dict())
    new = 3 + torch.rand(4, 1, 8, 8, dtype=DOUBLE)  # would re-initialise a fresh ActNorm
    trained_flow = Flow(trained, StandardNormal((1, 8, 8)))
    fresh_flow = Flow(fresh, StandardNormal((1, 8, 8)))
    # Evaluation first, while no batch in training mode can have re-initialised an ActNorm:
    # the loaded flag must stop the fresh copy, in training mode, from initialising on new.
    expected = trained_flow.eval().log_prob(new)
    assert torch.equal(fresh_flow.train().log_prob(new), expected)
    assert torch.equal(trained_flow.train().log_prob(new), expected)
    z, _ = fresh(new)
    assert torch.allclose(fresh.inverse(z)[0], new, atol=1e-8)
    floats = fresh.float()
    assert all(m.initialized for m in floats.modules() if isinstance(m, ActNorm))


def test_glow_multiscale_learns():
    torch.manual_seed(0)
    data = (torch.rand(64, 1, 4, 4) < 0.3).float() + 0.1 * torch.rand(64, 1, 4, 4)
    flow = Flow(
        glow_multiscale(1, 4, num_scales=1, steps_per_scale=2, hidden_channels=8),
        StandardNormal((1, 4, 4)),
    )
    before = flow.log_prob(data).mean().item()  # also initialises ActNorm
    optimizer = torch.optim.Adam(flow.parameters(), lr=3e-2)
    for _ in range(10):
        optimizer.zero_grad()
        loss = -flow.log_prob(data).mean()
        loss.backward()
        optimizer.step()
    assert flow.log_prob(data).mean().item() > before + 1.0


def test_every_parameter_of_glow_gets_a_gradient():
    model = small_glow()
    ready(model, torch.rand(8, 1, 8, 8, dtype=DOUBLE))
    flow = Flow(model, StandardNormal((1, 8, 8)))
    (-flow.log_prob(torch.rand(4, 1, 8, 8, dtype=DOUBLE)).mean()).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().max() > 0, name


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"image_size": 6}, ValueError),  # 6 cannot be halved twice
        ({"image_size": (8, 4), "num_scales": 3}, ValueError),
        ({"image_size": (8, 8, 8)}, ValueError),
        ({"num_scales": 0}, ValueError),
        ({"steps_per_scale": 0}, ValueError),
        ({"in_channels": 1.5}, TypeError),
        ({"hidden_channels": -1}, ValueError),
    ],
)
def test_glow_multiscale_bad_arguments_raise(kwargs, error):
    with pytest.raises(error, match="expected"):
        glow_multiscale(**kwargs)


def test_glow_multiscale_bad_input_raises():
    model = small_glow()
    with pytest.raises(ValueError, match="expected"):
        model(torch.zeros(2, 1, 8, dtype=DOUBLE))
    with pytest.raises(ValueError, match="expected"):
        model(torch.full((2, 1, 8, 8), float("nan"), dtype=DOUBLE))
    with pytest.raises(TypeError, match="expected"):
        model(torch.zeros(2, 1, 8, 8, dtype=torch.float32))
    with pytest.raises(ValueError, match="expected"):
        model(torch.zeros(2, 2, 8, 8, dtype=DOUBLE))  # wrong number of channels


# ---------------------------------------------------------------------------- every layer

LAYERS = {
    "actnorm": (lambda: ActNorm(4), (4, 3, 3)),
    "full_1x1": (lambda: Invertible1x1Conv(4), (4, 3, 3)),
    "lu_1x1": (lambda: LUInvertible1x1Conv(4), (4, 3, 3)),
    "step_affine": (lambda: GlowStep(4, 8), (4, 3, 3)),
    "step_additive": (lambda: GlowStep(4, 8, coupling=AdditiveCoupling.for_images), (4, 3, 3)),
    "glow": (lambda: small_glow(), (1, 8, 8)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_log_det_in_float32(name):
    make, shape = LAYERS[name]
    torch.manual_seed(0)
    layer = make().float()
    x = torch.randn(8, *shape)
    ready(layer, x)
    assert check_invertible(layer, x)
    result = check_log_det(layer, x[:1])  # float32 tolerance: 1e-4 relative
    assert result, result.message


def tensors_in(value: object, path: str):
    """``(path, tensor)`` for every tensor in ``value``, also inside lists, tuples and dicts."""
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from tensors_in(item, f"{path}[{key!r}]")
    elif isinstance(value, (list, tuple, set, frozenset)):
        for index, item in enumerate(value):
            yield from tensors_in(item, f"{path}[{index}]")


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_tensor_is_a_parameter_or_buffer(name):
    """A tensor held anywhere but in a parameter or a saved buffer misses state_dict and .to()."""
    make, shape = LAYERS[name]
    layer = make().float()
    layer(torch.randn(4, *shape))  # initialise any ActNorm: tensors made on the first call too
    for module in layer.modules():
        owner = type(module).__name__
        for key, value in vars(module).items():
            if key not in ("_parameters", "_buffers"):
                stray = [path for path, _ in tensors_in(value, key)]
                assert not stray, f"{owner} keeps {stray} outside state_dict and .to()"
        unsaved = sorted(module._non_persistent_buffers_set)
        assert not unsaved, f"{owner} registers {unsaved} as buffers that state_dict leaves out"
