"""The model factories: whole flows are invertible, correct, normalised, saveable and strict."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flowcourse import models
from flowcourse.checks import (
    check_autoregressive,
    check_invertible,
    check_log_det,
    check_normalized,
)
from flowcourse.core import Flow
from flowcourse.glow import ActNorm, LUInvertible1x1Conv
from tests.helpers import randomize_parameters

# Small versions of every factory: big enough to mix features, small enough that an
# autograd Jacobian of the whole flow takes a fraction of a second.
SMALL = {
    "nice": dict(features=3, num_layers=4, hidden_features=8),
    "realnvp": dict(features=3, num_layers=4, hidden_features=8),
    "maf": dict(features=3, num_layers=3, hidden_features=8),
    "iaf": dict(features=3, num_layers=3, hidden_features=8),
    "planar": dict(features=3, num_layers=4),
    "radial": dict(features=3, num_layers=4),
    "realnvp_image": dict(image_shape=(1, 4, 4), num_scales=2, hidden_channels=4),
    "glow": dict(image_shape=(1, 4, 4), num_scales=2, steps_per_scale=2, hidden_channels=4),
}
FACTORIES = list(SMALL)
VECTOR_FACTORIES = ["nice", "realnvp", "maf", "iaf", "planar", "radial"]


def event_shape(name: str, **overrides: object) -> tuple[int, ...]:
    kwargs = {**SMALL[name], **overrides}
    return (kwargs["features"],) if "features" in kwargs else tuple(kwargs["image_shape"])


def data(name: str, num_samples: int = 4, seed: int = 0, dtype=torch.float64, **overrides):
    generator = torch.Generator().manual_seed(seed)
    shape = (num_samples, *event_shape(name, **overrides))
    return torch.randn(shape, generator=generator, dtype=dtype)


def build(name: str, seed: int = 0, dtype=torch.float64, scale: float = 0.3, **overrides) -> Flow:
    """A small flow of the factory ``name``, ActNorm initialised, then randomised.

    The initialising batch sets the ActNorm flags; randomising afterwards makes every
    layer (ActNorm included) a non-trivial map, so the checks below could fail.
    """
    flow = getattr(models, name)(**{**SMALL[name], **overrides}).to(dtype)
    if any(isinstance(m, ActNorm) for m in flow.modules()):
        with torch.no_grad():
            flow.log_prob(data(name, 32, seed=99, dtype=dtype, **overrides))
    return randomize_parameters(flow, seed=seed, scale=scale)


# ------------------------------------------------------------------- the flow is correct


@pytest.mark.parametrize("name", FACTORIES)
def test_invertible_and_log_det_matches_autograd(name):
    flow = build(name, seed=1)
    x = data(name, seed=1)
    z, log_abs_det = flow(x)
    # Guard against a vacuous pass: the randomised flow really moves x and changes volume.
    assert (z - x).abs().max() > 1e-2 and log_abs_det.abs().max() > 1e-3
    assert check_invertible(flow.transform, x)
    assert check_log_det(flow.transform, x)


@settings(max_examples=10, deadline=None)
@given(
    name=st.sampled_from(VECTOR_FACTORIES),
    features=st.integers(2, 5),
    num_layers=st.integers(1, 4),
    seed=st.integers(0, 10_000),
)
def test_vector_flows_for_any_size_and_seed(name, features, num_layers, seed):
    flow = build(name, seed=seed, features=features, num_layers=num_layers)
    x = data(name, 3, seed=seed, features=features)
    assert check_invertible(flow.transform, x)
    assert check_log_det(flow.transform, x)


@pytest.mark.parametrize("permutation", sorted(models.GLOW_PERMUTATIONS))
@pytest.mark.parametrize("coupling", sorted(models.GLOW_COUPLINGS))
def test_every_glow_variant_is_correct(permutation, coupling):
    flow = build("glow", seed=2, steps_per_scale=1, permutation=permutation, coupling=coupling)
    x = data("glow", 2, seed=2)
    assert check_invertible(flow.transform, x)
    assert check_log_det(flow.transform, x)


@pytest.mark.parametrize("name", FACTORIES)
def test_float32_flows_pass_the_float32_checks(name):
    # Milder weights than in float64: a deep random flow amplifies float32 round-off
    # beyond the default float32 tolerance, which says nothing about the layers.
    flow = build(name, seed=3, dtype=torch.float32, scale=0.1)
    x = data(name, seed=3, dtype=torch.float32)
    assert check_invertible(flow.transform, x)
    assert check_log_det(flow.transform, x)


@pytest.mark.parametrize("name", ["maf", "iaf"])
def test_autoregressive_orders_alternate(name):
    # One layer is triangular in the order 1..D; the next layer reverses the order.
    flow = build(name, seed=4, features=4, num_layers=2)
    x = data(name, 3, seed=4, features=4)
    first, second = flow.transform
    natural = torch.arange(1, 5)
    assert torch.equal(first.order, natural) and torch.equal(second.order, natural.flip(0))
    assert check_autoregressive(first, x, natural)
    assert check_autoregressive(second, x, natural.flip(0))
    assert not check_autoregressive(first, x, natural.flip(0))


def test_nice_changes_volume_only_in_its_scaling_layer():
    flow = build("nice", seed=5)
    _, log_abs_det = flow(data("nice", 6, seed=5))
    scaling = flow.transform[-1]
    expected = scaling.log_scale.sum().expand(6)
    assert torch.allclose(log_abs_det, expected, atol=1e-12)


@pytest.mark.parametrize("name", FACTORIES)
def test_sample_and_log_prob_agree_with_log_prob(name):
    flow = build(name, seed=6)
    torch.manual_seed(6)
    x, log_prob = flow.sample_and_log_prob(5)
    assert x.shape == (5, *event_shape(name)) and x.dtype == torch.float64
    assert torch.allclose(log_prob, flow.log_prob(x), atol=1e-8)


@pytest.mark.parametrize("name", VECTOR_FACTORIES)
def test_two_dimensional_flows_integrate_to_one(name):
    flow = build(name, seed=7, features=2)
    result = check_normalized(flow, bounds=(-8.0, 8.0), resolution=300, tolerance=0.01)
    assert result, result.message


# ------------------------------------------------------------ the flow can be saved and moved


@pytest.mark.parametrize("name", FACTORIES)
def test_config_rebuilds_the_same_model(name):
    flow = getattr(models, name)(**SMALL[name])
    config = json.loads(json.dumps(flow.config))  # only JSON-friendly values
    assert config == flow.config and config["factory"] == name
    torch.manual_seed(12345)  # the global random state must not matter, only the seed
    rebuilt = getattr(models, config["factory"])(**config["kwargs"])
    # The seed fixes every random choice, initial weights included.
    expected, actual = flow.state_dict(), rebuilt.state_dict()
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[key], actual[key]) for key in expected)


@pytest.mark.parametrize("name", FACTORIES)
def test_seed_changes_the_model_but_not_the_global_random_state(name):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    first = getattr(models, name)(**SMALL[name], seed=1)
    assert torch.equal(torch.rand(3), expected)
    torch.manual_seed(0)  # the same global state as for ``first``: only the seed differs
    second = getattr(models, name)(**SMALL[name], seed=2)
    differs = [
        not torch.equal(a, b)
        for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True)
    ]
    assert any(differs)


def test_glow_steps_get_different_rotations():
    flow = models.glow(**SMALL["glow"])
    weights = [m.weight for m in flow.modules() if isinstance(m, LUInvertible1x1Conv)]
    first_level = [w for w in weights if w.shape == weights[0].shape]
    assert len(first_level) == 2 and not torch.allclose(first_level[0], first_level[1])


@pytest.mark.parametrize("name", FACTORIES)
def test_state_dict_round_trip_gives_identical_log_prob(name):
    flow = build(name, seed=8).eval()
    other = getattr(models, name)(**SMALL[name], seed=123).double().eval()
    other.load_state_dict(flow.state_dict())
    x = data(name, seed=8)
    with torch.no_grad():
        assert torch.equal(other.log_prob(x), flow.log_prob(x))


@pytest.mark.parametrize("name", FACTORIES)
def test_io_save_and_load_give_identical_log_prob(name, tmp_path):
    from flowcourse import io

    # float32, the dtype a factory builds in: load() rebuilds the flow from its config.
    flow = build(name, seed=9, dtype=torch.float32, scale=0.1).eval()
    path = tmp_path / f"{name}.pt"
    io.save(flow, path)
    loaded = io.load(path)
    assert loaded.config == flow.config and not loaded.training
    x = data(name, seed=9, dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(x), flow.log_prob(x))


# Only ActNorm behaves differently in training mode (it initialises on its first batch);
# the other factories have no mode-dependent layer, so comparing their modes tests nothing.
@pytest.mark.parametrize("name", ["glow"])
def test_train_and_eval_modes_agree(name):
    """An initialised ActNorm is not initialised again by a batch seen in training mode."""
    flow = build(name, seed=10)
    assert any(isinstance(m, ActNorm) for m in flow.modules())
    x = data(name, seed=10)
    with torch.no_grad():
        # Evaluation first: a re-initialisation on x in training mode would change the
        # layer before an evaluation that came second, hiding itself.
        in_evaluation = flow.eval().log_prob(x)
        in_training = flow.train().log_prob(x)
    assert torch.equal(in_training, in_evaluation)


@pytest.mark.parametrize("name", FACTORIES)
def test_to_float64_converts_everything(name):
    flow = build(name, seed=11, dtype=torch.float32, scale=0.1)
    x = data(name, seed=11, dtype=torch.float32)
    with torch.no_grad():
        single = flow.log_prob(x)
        flow = flow.to(torch.float64)
        double = flow.log_prob(x.double())
        samples = flow.sample(2)
    assert double.dtype == torch.float64 and samples.dtype == torch.float64
    assert torch.allclose(single.double(), double, atol=1e-3)


# ------------------------------------------------------------------ bad input is refused


def bad_inputs(name: str) -> list[tuple[object, type[Exception]]]:
    x = data(name)
    nan = x.clone()
    nan[0, 0] = float("nan")
    wrong_shapes = [x[:, :-1]] if x.dim() == 2 else [x[:, :, 1:], torch.cat([x, x], dim=1)]
    return [
        (x.long(), TypeError),  # not floating point
        (x.float(), TypeError),  # float32 into a float64 flow
        (nan, ValueError),
        (x.reshape(-1), ValueError),  # no batch axis
        *[(wrong, ValueError) for wrong in wrong_shapes],
    ]


@pytest.mark.parametrize("name", FACTORIES)
def test_bad_input_raises_saying_what_was_expected(name):
    flow = build(name, seed=12)
    with pytest.raises(TypeError, match="expected x to be a torch.Tensor"):
        flow.log_prob(data(name).tolist())
    for bad, error in bad_inputs(name):
        for method in (flow.log_prob, flow.transform.inverse):
            with pytest.raises(error, match="expected"):
                method(bad)


@pytest.mark.parametrize(
    ("factory", "kwargs", "error", "match"),
    [
        ("nice", dict(features=1), ValueError, "features to be an int >= 2"),
        ("realnvp", dict(features=0), ValueError, "features to be an int >= 2"),
        ("maf", dict(features=0), ValueError, "features to be a positive int"),
        ("iaf", dict(features=2, num_layers=0), ValueError, "num_layers to be a positive int"),
        ("planar", dict(features=2.5), TypeError, "features to be an int"),
        ("radial", dict(features=True), TypeError, "features to be an int"),
        ("realnvp", dict(features=4.0), TypeError, "features to be an int"),
        ("maf", dict(features=2, context_features=-1), ValueError, "context_features"),
        ("maf", dict(features=2, context_features=1.5), TypeError, "context_features"),
        ("maf", dict(features=2, seed="0"), TypeError, "seed to be an int"),
        ("realnvp_image", dict(image_shape=(8, 8)), ValueError, r"\(channels, height, width\)"),
        ("glow", dict(image_shape=(1, 6, 6)), ValueError, "divisible"),
        ("glow", dict(permutation="lu"), ValueError, "'conv1x1', 'conv1x1_full', 'shuffle'"),
        ("glow", dict(coupling="spline"), ValueError, "one of 'affine', 'additive'"),
    ],
)
def test_bad_factory_arguments_raise(factory, kwargs, error, match):
    with pytest.raises(error, match="expected " + ".*" + match):
        getattr(models, factory)(**kwargs)


@pytest.mark.parametrize("features", [2, 8, 32, 64])
@pytest.mark.parametrize("hidden", [64, 256])
def test_realnvp_has_the_parameters_of_nflows_zuko_and_normflows(features, hidden):
    """Six couplings, each an MLP (two hidden layers) from the k kept to 2t outputs."""
    kept, transformed = features // 2, features - features // 2
    per_coupling = (kept + 1) * hidden + (hidden + 1) * hidden + (hidden + 1) * 2 * transformed
    flow = models.realnvp(features, num_layers=6, hidden_features=hidden)
    assert sum(p.numel() for p in flow.parameters()) == 6 * per_coupling
