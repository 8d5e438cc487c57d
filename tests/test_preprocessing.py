"""Tests of dequantisation, the logit transform and the bits-per-dimension bookkeeping."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flowcourse import io
from flowcourse.checks import check_invertible, check_log_det
from flowcourse.core import Compose, Flow, Inverse, StandardNormal
from flowcourse.preprocessing import (
    Dequantize,
    DequantizeLogit,
    LogitTransform,
    bits_per_dim,
    bits_per_dim_from_logit,
    dequantize,
    quantize,
)

SHAPES = st.sampled_from([(3, 1), (4, 5), (2, 1, 3, 3), (2, 3, 2, 4)])


def uniform_inside(shape, seed, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return 0.001 + 0.998 * torch.rand(shape, generator=generator, dtype=dtype)


# --- LogitTransform ----------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(shape=SHAPES, seed=st.integers(0, 2**31 - 1), alpha=st.sampled_from([0.0, 0.05, 0.2]))
def test_logit_is_invertible_with_exact_log_det(shape, seed, alpha):
    logit = LogitTransform(alpha)
    y = uniform_inside(shape, seed)
    assert check_invertible(logit, y)
    result = check_log_det(logit, y)
    assert result, result.message
    # The inverse's log-det against autograd too, at points spread over the real line.
    s = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    result = check_log_det(Inverse(logit), 3 * s)
    assert result, result.message


def test_logit_values_and_endpoints():
    logit = LogitTransform(alpha=0.05)
    y = torch.tensor([[0.0, 0.5, 1.0]], dtype=torch.float64)
    s, log_abs_det = logit(y)
    expected = torch.tensor([[math.log(0.05 / 0.95), 0.0, math.log(0.95 / 0.05)]], dtype=y.dtype)
    assert torch.allclose(s, expected, atol=1e-12)
    slopes = [0.9 / (0.05 * 0.95), 0.9 / 0.25, 0.9 / (0.05 * 0.95)]
    assert float(log_abs_det) == pytest.approx(sum(map(math.log, slopes)), abs=1e-12)
    assert torch.isfinite(logit.inverse(torch.tensor([[-200.0, 200.0]]))[1]).all()


def test_logit_log_det_in_float32():
    logit = LogitTransform(alpha=0.05)
    y = uniform_inside((8, 1, 4, 4), seed=0, dtype=torch.float32)
    assert check_invertible(logit, y)
    assert check_log_det(logit, y, atol=1e-4)


def test_logit_alpha_is_saved_and_restored(tmp_path):
    """alpha is state: a transform loaded from a state_dict or a checkpoint uses the saved one."""
    saved = LogitTransform(alpha=0.2)
    y = uniform_inside((5, 3), seed=1)
    assert float(saved.state_dict()["alpha"]) == 0.2
    fresh = LogitTransform()  # the default margin, 0.05
    fresh.load_state_dict(saved.state_dict())
    assert float(fresh.alpha) == 0.2 and "alpha=0.2" in repr(fresh)
    for direction, points in (("forward", y), ("inverse", 3 * y - 1)):
        expected = getattr(saved, direction)(points)
        got = getattr(fresh, direction)(points)
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    # Through flowcourse.io, inside a flow, into a flow built with the default alpha.
    flow = Flow(Compose(LogitTransform(alpha=0.2)), StandardNormal(3)).double()
    io.save(flow, tmp_path / "logit.pt")
    target = Flow(Compose(LogitTransform()), StandardNormal(3)).double()
    loaded = io.load(tmp_path / "logit.pt", flow=target)
    assert float(loaded.transform[0].alpha) == 0.2
    assert torch.equal(loaded.log_prob(y), flow.log_prob(y))
    # The change of margin is visible: alpha = 0.05 gives another density.
    default = Flow(Compose(LogitTransform()), StandardNormal(3)).double()
    assert (default.log_prob(y) - flow.log_prob(y)).abs().min() > 1e-3
    # float64 data sees alpha to every digit whatever the default dtype.
    assert saved.alpha.dtype == torch.float64
    assert DequantizeLogit(17, alpha=0.2).logit.state_dict()["alpha"] == 0.2
    assert "alpha=0.2" in repr(DequantizeLogit(17, alpha=0.2))


@pytest.mark.parametrize(
    ("alpha", "bad", "error"),
    [
        (0.05, torch.tensor([[0.5, 1.2]]), ValueError),
        (0.05, torch.tensor([[-0.01, 0.5]]), ValueError),
        (0.0, torch.tensor([[0.0, 0.5]]), ValueError),
        (0.0, torch.tensor([[1.0, 0.5]]), ValueError),
        (0.05, torch.tensor([[float("nan"), 0.5]]), ValueError),
        (0.05, torch.tensor([0.5, 0.5]), ValueError),
        (0.05, [[0.5, 0.5]], TypeError),
        (0.05, torch.tensor([[0, 1]]), TypeError),
    ],
)
def test_logit_rejects_bad_input(alpha, bad, error):
    with pytest.raises(error, match="expected"):
        LogitTransform(alpha)(bad)


def test_logit_inverse_rejects_bad_input_and_bad_alpha():
    with pytest.raises(ValueError, match="expected s to be finite"):
        LogitTransform().inverse(torch.tensor([[math.inf]]))
    for alpha in (-0.1, 0.5, "0.05"):
        with pytest.raises(ValueError, match="expected alpha"):
            LogitTransform(alpha)


# --- dequantize and quantize -------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(num_levels=st.integers(2, 256), seed=st.integers(0, 2**31 - 1), shape=SHAPES)
def test_dequantize_stays_in_its_cell_and_quantize_inverts_it(num_levels, seed, shape):
    generator = torch.Generator().manual_seed(seed)
    levels = torch.randint(0, num_levels, shape, generator=generator).double()
    y = dequantize(levels, num_levels, generator)
    assert y.shape == levels.shape and y.dtype == torch.float64
    assert (y >= levels / num_levels).all() and (y <= (levels + 1) / num_levels).all()
    assert torch.equal(quantize(y, num_levels), levels)
    again = dequantize(levels, num_levels, torch.Generator().manual_seed(seed))
    assert not torch.equal(y, again) or levels.numel() == 0  # generator was advanced above


def test_dequantize_noise_is_uniform_and_seeded():
    levels = torch.full((200_000,), 5.0)
    y = dequantize(levels, 17, torch.Generator().manual_seed(0))
    noise = (y * 17 - 5).double()
    assert abs(float(noise.mean()) - 0.5) < 0.005 and abs(float(noise.var()) - 1 / 12) < 0.002
    counts = torch.histc(noise, bins=10, min=0, max=1)
    assert float((counts / len(noise) - 0.1).abs().max()) < 0.005
    first = dequantize(levels[:10], 17, torch.Generator().manual_seed(3))
    assert torch.equal(first, dequantize(levels[:10], 17, torch.Generator().manual_seed(3)))
    assert dequantize(torch.tensor([1, 2]), 4).dtype == torch.get_default_dtype()


@pytest.mark.parametrize(
    ("levels", "num_levels", "error", "match"),
    [
        (torch.tensor([0.0, 17.0]), 17, ValueError, r"integers in \[0, 16\]"),
        (torch.tensor([-1.0, 3.0]), 17, ValueError, "expected levels"),
        (torch.tensor([0.5, 3.0]), 17, ValueError, "not all integers"),
        (torch.tensor([float("nan")]), 17, ValueError, "finite"),
        (np.zeros(3), 17, TypeError, "expected levels"),
        (torch.tensor([0.0]), 1, ValueError, "expected num_levels"),
        (torch.tensor([0.0]), 2.0, ValueError, "expected num_levels"),
    ],
)
def test_dequantize_rejects_bad_input(levels, num_levels, error, match):
    with pytest.raises(error, match=match):
        dequantize(levels, num_levels)


# --- bits per dimension ------------------------------------------------------------------


def test_uniform_model_costs_log2_levels():
    for num_levels in (2, 17, 256):
        value = bits_per_dim(torch.zeros(3), num_dims=64, num_levels=num_levels)
        assert torch.allclose(value, torch.full((3,), math.log2(num_levels)), atol=1e-6)


def test_bits_per_dim_equals_the_cross_entropy_of_a_histogram_model():
    """A density on y that is constant on each level's cell is a categorical model in disguise.

    p_Y(y) = L * pi[k] on [k/L, (k+1)/L) integrates to one and gives P(k) = pi[k], so the
    bits/dim must equal the discrete cross-entropy -mean log2 pi[k], computed by numpy.
    """
    rng = np.random.default_rng(0)
    num_levels, num_dims = 17, 64
    pi = rng.dirichlet(np.ones(num_levels))
    levels = rng.integers(0, num_levels, size=(10, num_dims))
    y = dequantize(torch.as_tensor(levels, dtype=torch.float64), num_levels)
    cell = quantize(y, num_levels).long()
    log_prob_y = torch.log(num_levels * torch.as_tensor(pi)[cell]).sum(dim=1)
    expected = -np.log2(pi[levels]).mean(axis=1)
    assert np.allclose(bits_per_dim(log_prob_y, num_dims, num_levels).numpy(), expected)


def test_bits_per_dim_bounds_the_exact_discrete_model_through_the_logit():
    """A Gaussian in logit space (alpha = 0, one pixel) has P(k) in closed form.

    P(k) = Phi(logit((k+1)/L)) - Phi(logit(k/L)). Averaged over the noise, the bits/dim
    from the dequantised density must be an upper bound on -log2 P(k).
    """
    num_levels = 8
    logit = LogitTransform(alpha=0.0)
    flow = Flow(Compose(), StandardNormal(1)).double()
    edges = torch.arange(num_levels + 1, dtype=torch.float64) / num_levels
    cdf = torch.special.ndtr(torch.logit(edges))  # Phi(-inf) = 0 and Phi(inf) = 1
    exact = -torch.log2(cdf[1:] - cdf[:-1])
    assert float((cdf[1:] - cdf[:-1]).sum()) == pytest.approx(1.0)
    levels = torch.arange(num_levels, dtype=torch.float64).repeat_interleave(20_000)[:, None]
    y = dequantize(levels, num_levels, torch.Generator().manual_seed(0)).clamp(1e-12, 1 - 1e-12)
    s, log_abs_det = logit(y)
    bound = bits_per_dim_from_logit(flow.log_prob(s), log_abs_det, 1, num_levels)
    assert torch.allclose(bound, bits_per_dim(flow.log_prob(s) + log_abs_det, 1, num_levels))
    average = bound.reshape(num_levels, -1).mean(dim=1)
    assert (average >= exact - 0.01).all()  # Jensen, up to Monte-Carlo error
    # Close where the density is nearly flat across a cell; the end cells, where p_Y
    # falls to zero at y = 0 and y = 1, pay a large Jensen gap.
    assert (average - exact)[1:-1].max() < 0.05 and (average - exact)[[0, -1]].min() > 1
    # The density on y integrates to one when alpha = 0 (midpoint rule on [0, 1]).
    grid = ((torch.arange(100_000, dtype=torch.float64) + 0.5) / 100_000)[:, None]
    s, log_abs_det = logit(grid)
    assert float((flow.log_prob(s) + log_abs_det).exp().mean()) == pytest.approx(1.0, abs=1e-4)


def test_bits_per_dim_rejects_bad_arguments():
    with pytest.raises(ValueError, match="expected num_dims"):
        bits_per_dim(torch.zeros(1), num_dims=0, num_levels=17)
    with pytest.raises(ValueError, match="expected num_levels"):
        bits_per_dim(torch.zeros(1), num_dims=4, num_levels=1)


# --- the ready-made preprocessors --------------------------------------------------------


def test_dequantize_logit_gives_log_prob_of_y():
    levels = torch.randint(0, 17, (4, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    levels = levels.double()
    preprocess = DequantizeLogit(17, alpha=0.05)
    s, log_abs_det = preprocess(levels, torch.Generator().manual_seed(1))
    y = dequantize(levels, 17, torch.Generator().manual_seed(1))
    s_direct, log_abs_det_direct = LogitTransform(0.05)(y)
    assert torch.equal(s, s_direct) and torch.equal(log_abs_det, log_abs_det_direct)
    assert torch.equal(preprocess.to_levels(s), levels)
    y_only, zeros = Dequantize(17)(levels, torch.Generator().manual_seed(1))
    assert torch.equal(y_only, y) and torch.equal(zeros, torch.zeros(4, dtype=torch.float64))
    assert "num_levels=17" in repr(preprocess) and "num_levels=17" in repr(Dequantize(17))


def test_evaluate_bits_per_dim_matches_the_bookkeeping_done_by_hand():
    from flowcourse.core import StandardNormal
    from flowcourse.preprocessing import (
        Dequantize,
        DequantizeLogit,
        bits_per_dim_from_logit,
        evaluate_bits_per_dim,
    )

    levels = torch.randint(0, 17, (6, 1, 4, 4), generator=torch.Generator().manual_seed(1)).float()
    uniform = evaluate_bits_per_dim(lambda y: torch.zeros(len(y)), levels, Dequantize(17))
    assert abs(uniform - math.log2(17)) < 1e-6
    base = StandardNormal((1, 4, 4))
    preprocess = DequantizeLogit(17, alpha=0.05)
    generator = torch.Generator().manual_seed(5)
    by_hand = []
    for _ in range(3):
        s, log_abs_det = preprocess(levels, generator)
        by_hand.append(bits_per_dim_from_logit(base.log_prob(s), log_abs_det, 16, 17))
    expected = float(torch.cat(by_hand).mean())
    got = evaluate_bits_per_dim(base.log_prob, levels, preprocess, draws=3, seed=5)
    assert abs(got - expected) < 1e-6
