"""MADE: masks, degrees, the autoregressive property, orders, context and input checks."""

import functools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from flowcourse.autoregressive import (
    MADE,
    MaskedLinear,
    hidden_degrees,
    made_autoregressive_inverse,
    natural_order,
    random_order,
)
from tests.helpers import randomize_parameters

pytestmark = pytest.mark.usefixtures("float64_by_default", "fixed_seed")


def made_jacobian(made: MADE, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
    """Largest |d out / d x| over the batch, shape (k * D, D)."""
    rows = []
    for index, sample in enumerate(x):
        row_context = None if context is None else context[index : index + 1]

        def single(s: torch.Tensor, c: torch.Tensor | None = row_context) -> torch.Tensor:
            return made(s.unsqueeze(0), c).squeeze(0)

        rows.append(torch.autograd.functional.jacobian(single, sample))
    return torch.stack(rows).abs().amax(dim=0)


def allowed(order: torch.Tensor, multiplier: int) -> torch.Tensor:
    """allowed[k, j]: output k (feature k % D) may depend on input j."""
    outputs = order.repeat(multiplier)
    return order.reshape(1, -1) < outputs.reshape(-1, 1)


@settings(max_examples=15, deadline=None)
@given(
    features=st.integers(1, 6),
    num_hidden_layers=st.integers(1, 3),
    output_multiplier=st.integers(1, 2),
    order_seed=st.none() | st.integers(0, 1000),
    context_features=st.sampled_from([0, 2]),
)
def test_outputs_depend_exactly_on_earlier_inputs(
    features, num_hidden_layers, output_multiplier, order_seed, context_features
):
    order = None if order_seed is None else random_order(features, order_seed)
    made = MADE(
        features,
        hidden_features=features + 2,
        num_hidden_layers=num_hidden_layers,
        output_multiplier=output_multiplier,
        order=order,
        context_features=context_features,
        activation=nn.Tanh,  # tanh never switches a path off, so allowed entries are non-zero
    )
    randomize_parameters(made, seed=features)
    x = torch.randn(4, features)
    context = torch.randn(4, context_features) if context_features else None
    jac = made_jacobian(made, x, context)
    expected = allowed(made.order, output_multiplier)
    assert jac.shape == (output_multiplier * features, features)
    assert torch.all(jac[~expected] == 0), "an output depends on an input it must not see"
    assert torch.all(jac[expected] > 1e-8), "an output misses an input before it"


@settings(max_examples=15, deadline=None)
@given(
    features=st.integers(1, 7),
    widths=st.lists(st.integers(0, 5), min_size=1, max_size=3),
    output_multiplier=st.integers(1, 3),
    order_seed=st.integers(0, 1000),
    context_features=st.sampled_from([0, 3]),
)
def test_masks_match_degrees_and_connect_every_earlier_input(
    features, widths, output_multiplier, order_seed, context_features
):
    narrowest = features if context_features else max(features - 1, 1)
    widths = [narrowest + extra for extra in widths]
    made = MADE(
        features,
        widths,
        output_multiplier=output_multiplier,
        order=random_order(features, order_seed),
        context_features=context_features,
    )
    degrees = made.degrees
    assert len(degrees) == len(made.masks) + 1
    assert torch.equal(degrees[0], made.order)
    for before, after, mask in zip(degrees[:-2], degrees[1:-1], made.masks[:-1], strict=True):
        assert torch.equal(mask, (after.reshape(-1, 1) >= before.reshape(1, -1)).double())
    last = (degrees[-1].reshape(-1, 1) > degrees[-2].reshape(1, -1)).double()
    assert torch.equal(made.masks[-1], last)
    # Count paths from input j to output k: positive exactly where the ordering allows.
    paths = made.masks[0]
    for mask in made.masks[1:]:
        paths = mask @ paths
    assert torch.equal(paths > 0, allowed(made.order, output_multiplier))
    if context_features:
        # The context feeds every first-layer unit; it must reach every output.
        from_context = torch.ones(widths[0], 1)
        for mask in made.masks[1:]:
            from_context = mask @ from_context
        assert torch.all(from_context > 0)


def test_hidden_degrees_are_cyclic_and_cover_every_degree():
    assert hidden_degrees(7, features=4).tolist() == [1, 2, 3, 1, 2, 3, 1]
    assert hidden_degrees(3, features=1).tolist() == [0, 0, 0]
    assert set(hidden_degrees(5, features=6).tolist()) == {1, 2, 3, 4, 5}
    assert hidden_degrees(5, features=3, lowest=0).tolist() == [0, 1, 2, 0, 1]
    assert hidden_degrees(2, features=1, lowest=0).tolist() == [0, 0]


def test_output_layout_is_parameter_major():
    """out.reshape(B, k, D)[:, p, i] is parameter p of feature i: it never sees x_i."""
    made = randomize_parameters(MADE(3, 4, output_multiplier=2, activation=nn.Tanh), seed=1)
    x = torch.randn(2, 3)
    base = made(x).reshape(2, 2, 3)
    for i in range(3):
        moved = x.clone()
        moved[:, i] += 1.0
        changed = made(moved).reshape(2, 2, 3) != base
        assert not changed[:, :, i].any()
        assert torch.equal(torch.stack(made(x).chunk(2, dim=1), dim=1), base)


def test_narrow_hidden_layer_raises_and_says_how_wide():
    with pytest.raises(ValueError, match=r"expected .* at least 5 units.*got 3 in hidden layer 1"):
        MADE(6, hidden_features=[8, 3])
    with pytest.raises(ValueError, match="at least 9"):
        MADE(10, hidden_features=4, num_hidden_layers=1)
    MADE(6, hidden_features=[5, 5])  # exactly D - 1 is enough
    with pytest.raises(ValueError, match="with context to have at least 6 units"):
        MADE(6, hidden_features=5, context_features=1)  # degree 0 needs one more unit
    MADE(6, hidden_features=6, context_features=1)


def test_single_feature_output_is_a_constant():
    made = randomize_parameters(MADE(1, hidden_features=3), seed=2)
    out = made(torch.randn(5, 1))
    assert torch.allclose(out, out[:1].expand(5, -1))


def test_resample_order_changes_masks_and_survives_state_dict():
    made = MADE(5, hidden_features=6, output_multiplier=2, activation=nn.Tanh)
    randomize_parameters(made, seed=3)
    before = [mask.clone() for mask in made.masks]
    order = made.resample_order(seed=7)
    assert torch.equal(order, random_order(5, 7))
    assert torch.equal(made.order, order)
    assert any(not torch.equal(a, b) for a, b in zip(before, made.masks, strict=True))
    jac = made_jacobian(made, torch.randn(3, 5))
    assert torch.all(jac[~allowed(order, 2)] == 0)

    reloaded = MADE(5, hidden_features=6, output_multiplier=2, activation=nn.Tanh, seed=99)
    reloaded.load_state_dict(made.state_dict())
    assert torch.equal(reloaded.order, order)
    x = torch.randn(4, 5)
    assert torch.equal(reloaded(x), made(x))
    assert "layers.0.mask" in made.state_dict() and "order" in made.state_dict()


def test_set_order_keeps_weights():
    made = MADE(4, hidden_features=5)
    weights = [layer.weight.clone() for layer in made.layers]
    made.set_order([4, 3, 2, 1])
    assert made.order.tolist() == [4, 3, 2, 1]
    assert all(torch.equal(w, layer.weight) for w, layer in zip(weights, made.layers, strict=True))


def test_seed_fixes_weights_without_touching_the_global_generator():
    torch.manual_seed(0)
    expected_draw = torch.rand(1)
    torch.manual_seed(0)
    a = MADE(3, 4, seed=5, zero_init_last=False)
    draw = torch.rand(1)
    b = MADE(3, 4, seed=5, zero_init_last=False)
    c = MADE(3, 4, seed=6, zero_init_last=False)
    assert torch.equal(draw, expected_draw)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.layers[0].weight, c.layers[0].weight)


def test_fresh_made_outputs_zero():
    assert torch.equal(MADE(3, 4)(torch.randn(2, 3)), torch.zeros(2, 3))


def test_context_reaches_every_output():
    made = randomize_parameters(MADE(3, 4, context_features=2, activation=nn.Tanh), seed=4)
    x = torch.randn(1, 3)
    jac = torch.autograd.functional.jacobian(lambda c: made(x, c).squeeze(0), torch.randn(1, 2))
    assert torch.all(jac.abs().squeeze(1).sum(dim=1) > 0)


def test_float64_conversion_moves_masks_and_keeps_order():
    made = MADE(3, 4).to(torch.float32)
    assert made.masks[0].dtype == torch.float32
    made = made.double()
    assert made.masks[0].dtype == torch.float64 and made.order.dtype == torch.long


def test_float32():
    made = randomize_parameters(MADE(4, 5, activation=nn.Tanh), seed=6).float()
    jac = made_jacobian(made, torch.randn(3, 4, dtype=torch.float32))
    assert torch.all(jac[~allowed(made.order, 1)] == 0)


BAD_INPUTS = [
    ([[0.0, 1.0, 2.0]], TypeError),
    (torch.zeros(2, 4), ValueError),
    (torch.zeros(3), ValueError),
    (torch.tensor([[0.0, float("nan"), 0.0]]), ValueError),
    (torch.tensor([[0.0, float("inf"), 0.0]]), ValueError),
    (torch.zeros(2, 3, dtype=torch.float32), TypeError),
    (torch.zeros(2, 3, dtype=torch.int64), TypeError),
]


@pytest.mark.parametrize(("bad", "error"), BAD_INPUTS)
def test_bad_input_raises(bad, error):
    with pytest.raises(error, match="expected"):
        MADE(3, 4)(bad)


def test_bad_context_raises():
    made = MADE(3, 4, context_features=2)
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="expected a context of shape"):
        made(x)
    with pytest.raises(ValueError, match=r"expected context of shape \(batch, 2\)"):
        made(x, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="expected one context row per sample"):
        made(x, torch.zeros(5, 2))
    with pytest.raises(ValueError, match="expected no context"):
        MADE(3, 4)(x, torch.zeros(2, 2))


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"features": 0}, ValueError, "positive int"),
        ({"features": 2.0}, TypeError, "int"),
        ({"features": 3, "output_multiplier": 0}, ValueError, "output_multiplier"),
        ({"features": 3, "order": [1, 1, 2]}, ValueError, "permutation of 1..3"),
        ({"features": 3, "order": [0, 1, 2]}, ValueError, "permutation"),
        ({"features": 3, "order": [1, 2]}, ValueError, "permutation"),
        ({"features": 3, "order": [1.0, 2.0, 3.0]}, TypeError, "integers"),
        ({"features": 3, "hidden_features": [4, 4], "num_hidden_layers": 3}, ValueError, "match"),
        ({"features": 3, "hidden_features": []}, ValueError, "at least one"),
        ({"features": 3, "num_hidden_layers": 0}, ValueError, "num_hidden_layers"),
        ({"features": 3, "context_features": -1}, ValueError, "context_features"),
    ],
)
def test_bad_construction_raises(kwargs, error, pattern):
    with pytest.raises(error, match=f"expected.*{pattern}"):
        MADE(**kwargs)


def test_masked_linear_checks_and_buffers_its_mask():
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    layer = MaskedLinear(2, 2, mask)
    assert "mask" in dict(layer.named_buffers())
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bias.zero_()
    assert layer(torch.tensor([[1.0, 10.0]])).tolist() == [[1.0, 11.0]]
    with pytest.raises(ValueError, match=r"expected mask of shape \(3, 2\)"):
        MaskedLinear(2, 3, mask)


def test_orders():
    assert natural_order(4).tolist() == [1, 2, 3, 4]
    assert torch.equal(random_order(6, 3), random_order(6, 3))
    assert sorted(random_order(6, 3).tolist()) == [1, 2, 3, 4, 5, 6]
    assert any(not torch.equal(random_order(6, 3), random_order(6, s)) for s in range(4, 8))
    with pytest.raises(ValueError, match="positive"):
        natural_order(0)


def layer_by_layer(made: MADE, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
    """The MADE as a chain of its modules: MaskedLinear, (+ context), activation, ..."""
    hidden = made.layers[0](x)
    if made.context_layer is not None:
        hidden = hidden + made.context_layer(context)
    for activation, layer in zip(made.activations, list(made.layers)[1:], strict=True):
        hidden = layer(activation(hidden))
    return hidden


@pytest.mark.parametrize("activation", [nn.ReLU, nn.Tanh])
@pytest.mark.parametrize("context_features", [0, 2])
def test_forward_is_the_chain_of_its_modules(activation, context_features):
    made = MADE(
        4,
        [6, 5],
        output_multiplier=2,
        order=random_order(4, seed=1),
        context_features=context_features,
        activation=activation,
    )
    made = randomize_parameters(made, seed=2)
    x, c = torch.randn(7, 4), torch.randn(7, context_features) if context_features else None
    assert torch.equal(made(x, c), layer_by_layer(made, x, c))


@pytest.mark.parametrize("features", [1, 2, 5])
@pytest.mark.parametrize("context_features", [0, 3])
def test_feature_outputs_are_that_features_columns(features, context_features):
    multiplier = 3
    made = MADE(
        features,
        [features + 2, features + 1],
        output_multiplier=multiplier,
        order=random_order(features, seed=features),
        context_features=context_features,
    )
    made = randomize_parameters(made, seed=5)
    x = torch.randn(6, features)
    c = torch.randn(6, context_features) if context_features else None
    full = made(x, c).reshape(6, multiplier, features)
    weights = made.masked_weights()
    for feature in range(features):
        for masked in (None, weights):
            outputs = made(x, c, feature=feature, weights=masked)
            assert outputs.shape == (6, multiplier)
            assert torch.allclose(outputs, full[:, :, feature], rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("context_features", [0, 3])
def test_a_given_first_layer_replaces_the_first_product(context_features):
    made = randomize_parameters(
        MADE(4, [6, 5], output_multiplier=2, context_features=context_features), seed=3
    )
    x = torch.randn(6, 4)
    c = torch.randn(6, context_features) if context_features else None
    weight, bias = made.masked_weights()[0]
    first_layer = x @ weight.T + bias
    if context_features:
        first_layer = first_layer + c @ made.context_layer.weight.T
    assert torch.allclose(made(x, c, first_layer=first_layer), made(x, c), rtol=1e-13, atol=1e-13)
    # It is what the MADE reads: a different first layer gives different outputs.
    assert not torch.allclose(made(x, c, first_layer=first_layer + 1.0), made(x, c))


@pytest.mark.parametrize("context_features", [0, 2])
def test_the_recorded_inversion_survives_an_in_place_activation(context_features):
    """With autograd recording, the D-pass loop hands the MADE the first layer it keeps
    from pass to pass; an in-place activation must not write into it."""
    in_place = functools.partial(nn.LeakyReLU, 0.1, inplace=True)
    made = MADE(4, 8, output_multiplier=2, context_features=context_features, activation=in_place)
    made = randomize_parameters(made, seed=2)

    def elementwise(target, shift, log_scale):
        return target * torch.exp(log_scale) + shift, log_scale

    target = torch.randn(5, 4)
    c = torch.randn(5, context_features) if context_features else None
    with torch.no_grad():
        expected = made_autoregressive_inverse(made, elementwise, target, c)
    recorded = made_autoregressive_inverse(made, elementwise, target, c)
    for got, want in zip(recorded, expected, strict=True):
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)
    weight, bias = made.masked_weights()[0]
    first_layer = (target @ weight.T + bias).detach()
    if context_features:
        first_layer = first_layer + c @ made.context_layer.weight.T.detach()
    before = first_layer.clone()
    made(target, c, first_layer=first_layer)
    assert torch.equal(first_layer, before)
