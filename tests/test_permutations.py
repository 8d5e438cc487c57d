"""Fixed permutations of features (vectors) and channels (images)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flowcourse.checks import check_invertible, check_log_det, jacobian
from flowcourse.permutations import Permutation, RandomPermutation, ReversePermutation

DOUBLE = torch.float64


def build(kind: type, num_features: int, seed: int) -> Permutation:
    if kind is RandomPermutation:
        return RandomPermutation(num_features, seed=seed)
    return ReversePermutation(num_features)


@settings(max_examples=15, deadline=None)
@given(
    kind=st.sampled_from([ReversePermutation, RandomPermutation]),
    num_features=st.integers(1, 9),
    spatial=st.sampled_from([(), (2, 3)]),
    seed=st.integers(0, 10_000),
)
def test_permutations_invert_and_have_log_det_zero(kind, num_features, spatial, seed):
    layer = build(kind, num_features, seed)
    x = torch.randn(3, num_features, *spatial, dtype=DOUBLE)
    assert check_invertible(layer, x, atol=0.0)
    assert check_log_det(layer, x)
    z, log_abs_det = layer(x)
    assert torch.equal(log_abs_det, torch.zeros(3, dtype=DOUBLE))
    # Only dim 1 moves: each feature (or whole channel) lands where the indices say.
    assert torch.equal(z, x[:, layer.permutation])
    assert torch.equal(z.sort(dim=1).values, x.sort(dim=1).values)


@settings(max_examples=10, deadline=None)
@given(num_features=st.integers(2, 8), seed=st.integers(0, 10_000))
def test_the_jacobian_is_the_permutation_matrix(num_features, seed):
    layer = RandomPermutation(num_features, seed=seed)
    jac = jacobian(layer, torch.randn(2, num_features, dtype=DOUBLE))
    expected = torch.eye(num_features, dtype=DOUBLE)[layer.permutation]
    assert torch.equal(jac, expected.expand(2, num_features, num_features))


def test_reverse_permutation_reverses():
    x = torch.arange(10.0, dtype=DOUBLE).reshape(2, 5)
    z, _ = ReversePermutation(5)(x)
    assert torch.equal(z, x.flip(1))
    image = torch.randn(2, 3, 2, 2, dtype=DOUBLE)
    assert torch.equal(ReversePermutation(3)(image)[0], image.flip(1))


@pytest.mark.parametrize("kind", [Permutation, ReversePermutation, RandomPermutation])
@pytest.mark.parametrize("spatial", [(), (2, 3)])
def test_both_directions_and_gradients_are_those_of_indexing(kind, spatial):
    """index_select and flip move the values (and the gradients) as x[:, indices] does."""
    layer = {
        Permutation: lambda: Permutation(torch.tensor([1, 3, 0, 4, 2])),
        ReversePermutation: lambda: ReversePermutation(5),
        RandomPermutation: lambda: RandomPermutation(5, seed=3),
    }[kind]()
    x = torch.randn(3, 5, *spatial, dtype=DOUBLE, requires_grad=True)
    weights = torch.randn(3, 5, *spatial, dtype=DOUBLE)
    for method, indices in [(layer, layer.permutation), (layer.inverse, layer.inverse_permutation)]:
        out, _ = method(x)
        assert torch.equal(out, x[:, indices])
        (gradient,) = torch.autograd.grad((weights * out).sum(), x)
        (expected,) = torch.autograd.grad((weights * x[:, indices]).sum(), x)
        assert torch.equal(gradient, expected)


def test_random_permutation_is_reproducible_and_leaves_the_global_seed_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = RandomPermutation(20, seed=4)
    after = torch.rand(1)
    assert torch.equal(before, after)
    assert torch.equal(first.permutation, RandomPermutation(20, seed=4).permutation)
    assert not torch.equal(first.permutation, RandomPermutation(20, seed=5).permutation)
    assert not torch.equal(first.permutation, torch.arange(20))


def test_state_dict_round_trip_restores_the_permutation():
    original, other = RandomPermutation(12, seed=0), RandomPermutation(12, seed=1)
    x = torch.randn(3, 12, dtype=DOUBLE)
    assert not torch.equal(original(x)[0], other(x)[0])
    assert set(original.state_dict()) == {"permutation", "inverse_permutation"}
    other.load_state_dict(original.state_dict())
    assert torch.equal(original(x)[0], other(x)[0])
    assert torch.equal(original.inverse(x)[0], other.inverse(x)[0])


def test_dtype_conversion_keeps_integer_indices():
    layer = RandomPermutation(6, seed=2).double()
    assert layer.permutation.dtype == torch.int64
    x = torch.randn(2, 6, dtype=DOUBLE)
    # Indices work for any float dtype: float32 input goes through unchanged in kind.
    assert layer(x.float())[0].dtype == torch.float32


def test_a_permutation_from_indices():
    layer = Permutation(torch.tensor([2, 0, 1]))
    z, _ = layer(torch.tensor([[10.0, 20.0, 30.0]], dtype=DOUBLE))
    assert z.tolist() == [[30.0, 10.0, 20.0]]


def nan_input() -> torch.Tensor:
    x = torch.zeros(2, 4, dtype=DOUBLE)
    x[0, 1] = math.nan
    return x


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (torch.zeros(32, 3, dtype=DOUBLE), ValueError, r"\(batch, 4\).*\(32, 3\)"),
        (torch.zeros(2, 4, 3, dtype=DOUBLE), ValueError, r"\(batch, 4, height, width\)"),
        (torch.zeros(2, 5, 3, 3, dtype=DOUBLE), ValueError, r"\(batch, 4, height, width\)"),
        (nan_input(), ValueError, "finite"),
        (torch.zeros(2, 4, dtype=torch.int64), TypeError, "floating-point"),
        ([[0.0, 1.0, 2.0, 3.0]], TypeError, "torch.Tensor"),
    ],
)
@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_bad_inputs_raise_saying_what_was_expected(bad, error, match, direction):
    layer = ReversePermutation(4)
    method = layer if direction == "forward" else layer.inverse
    with pytest.raises(error, match="expected") as raised:
        method(bad)
    assert raised.match(match)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: ReversePermutation(0), ValueError, "num_features"),
        (lambda: RandomPermutation(3.0), TypeError, "num_features"),
        (lambda: RandomPermutation(4, seed="a"), TypeError, "seed"),
        (lambda: Permutation(torch.tensor([0, 0, 1])), ValueError, "exactly once"),
        (lambda: Permutation(torch.tensor([1, 2, 3])), ValueError, "exactly once"),
        (lambda: Permutation(torch.tensor([[0, 1]])), ValueError, "exactly once"),
        (lambda: Permutation(torch.tensor([0.0, 1.0])), TypeError, "integer"),
    ],
)
def test_bad_construction_raises_saying_what_was_expected(make, error, match):
    with pytest.raises(error, match="expected") as raised:
        make()
    assert raised.match(match)
