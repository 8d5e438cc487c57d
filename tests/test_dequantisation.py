"""Variational dequantisation: the dequantiser q(u | k), its bound, and the checkpoints.

Everything numerical runs in float64. The bound is checked against a discrete toy whose
exact probabilities come from quadrature, independently of the code under test.
"""

from __future__ import annotations

import math
from importlib.resources import as_file, files

import numpy as np
import pytest
import torch

from flowcourse import io, models
from flowcourse.coupling import checkerboard_mask
from flowcourse.dequantisation import (
    ConditionalAffineCoupling,
    FlowWithDequantizer,
    UniformDequantizer,
    VariationalDequantizer,
    check_levels,
)
from flowcourse.preprocessing import (
    DequantizeLogit,
    VariationalDequantizeLogit,
    bits_per_dim,
    evaluate_bits_per_dim,
)
from tests.helpers import randomize_parameters

DOUBLE = torch.float64


def random_dequantizer(image_shape=(1, 2, 3), num_levels=5, seed=0, scale=0.3, hidden=8):
    q = VariationalDequantizer(image_shape, num_levels, hidden_channels=hidden).double()
    return randomize_parameters(q, seed=seed, scale=scale)


def random_levels(batch, image_shape, num_levels, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, num_levels, (batch, *image_shape), generator=generator).double()


# --- the conditional coupling --------------------------------------------------------------


def coupling_and_inputs(seed=0):
    layer = ConditionalAffineCoupling(
        checkerboard_mask(3, 4, parity=seed % 2), channels=2, context_channels=1, hidden_channels=8
    ).double()
    randomize_parameters(layer, seed=seed)
    generator = torch.Generator().manual_seed(seed + 100)
    x = torch.randn(3, 2, 3, 4, generator=generator, dtype=DOUBLE)
    context = torch.randn(3, 1, 3, 4, generator=generator, dtype=DOUBLE)
    return layer, x, context


def full_jacobian(function, x):
    """(batch, D, D): the Jacobian of each sample's output with respect to its own input."""
    rows = []
    for sample in x:
        flat = sample.reshape(-1)

        def single(v, shape=sample.shape):
            return function(v.reshape(1, *shape)).reshape(-1)

        rows.append(torch.autograd.functional.jacobian(single, flat))
    return torch.stack(rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coupling_log_det_inverse_and_structure(seed) -> None:
    layer, x, context = coupling_and_inputs(seed)
    z, log_abs_det = layer(x, context)
    jacobian = full_jacobian(lambda v: layer(v, context[:1])[0], x[:1])[0]
    assert torch.allclose(log_abs_det[0], torch.linalg.slogdet(jacobian)[1], atol=1e-10)
    x_back, inverse_log_abs_det = layer.inverse(z, context)
    assert torch.allclose(x_back, x, atol=1e-12)
    assert torch.allclose(inverse_log_abs_det, -log_abs_det, atol=1e-12)
    # Structure: kept outputs copy their input, transformed outputs depend on themselves
    # only through a diagonal, and the network acts through the kept values.
    keep = layer.mask.expand(x.shape[1:]).reshape(-1)
    kept, changed = keep.nonzero().flatten(), (~keep).nonzero().flatten()
    assert torch.equal(jacobian[kept][:, kept], torch.eye(len(kept), dtype=DOUBLE))
    assert jacobian[kept][:, changed].abs().max() == 0
    block = jacobian[changed][:, changed]
    assert (block - torch.diag_embed(torch.diagonal(block))).abs().max() == 0
    assert jacobian[changed][:, kept].abs().max() > 1e-3


def test_coupling_reads_the_context() -> None:
    layer, x, context = coupling_and_inputs()
    z, _ = layer(x, context)
    z_other, _ = layer(x, context + 1)
    keep = layer.mask.expand_as(x)
    assert torch.equal(z[keep], z_other[keep])
    assert (z - z_other).abs().max() > 1e-3, "a different context must change the output"


def test_coupling_refuses_bad_input() -> None:
    layer, x, context = coupling_and_inputs()
    with pytest.raises(ValueError, match="context"):
        layer(x)
    with pytest.raises(ValueError, match="context of shape"):
        layer(x, context[:2])
    with pytest.raises(ValueError, match="shape"):
        layer(x[:, :1], context)
    with pytest.raises(TypeError, match="dtype"):
        layer(x.float(), context.float())
    with pytest.raises(TypeError):
        ConditionalAffineCoupling(torch.ones(1, 2, 2), channels=1, context_channels=1)
    with pytest.raises(ValueError):
        ConditionalAffineCoupling(checkerboard_mask(2, 2), channels=0, context_channels=1)


# --- the dequantiser q(u | k) ----------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_samples_lie_in_the_unit_cube(seed) -> None:
    q = random_dequantizer(seed=seed, scale=1.0)  # large weights: large shifts and scales
    levels = random_levels(256, q.image_shape, q.num_levels, seed)
    u, log_q = q.sample_and_log_prob(levels, torch.Generator().manual_seed(seed))
    assert u.shape == levels.shape and log_q.shape == (256,)
    assert bool(((u > 0) & (u < 1)).all())
    assert torch.isfinite(log_q).all()
    assert log_q.std() > 0.1, "random weights must make q differ from uniform"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_q_against_autograd_jacobian(seed) -> None:
    q = random_dequantizer(seed=seed, scale=0.15)
    levels = random_levels(3, q.image_shape, q.num_levels, seed)
    generator = torch.Generator().manual_seed(seed)
    v = torch.rand(levels.shape, generator=generator, dtype=DOUBLE)
    eps = torch.log(v) - torch.log1p(-v)  # standard logistic noise
    u, log_abs_det = q.inverse(eps, levels)
    assert bool(((u > 1e-9) & (u < 1 - 1e-9)).all()), "away from the rounding of sigma"
    for i in range(len(levels)):
        jacobian = full_jacobian(lambda e, i=i: q.inverse(e, levels[i : i + 1])[0], eps[i : i + 1])
        log_det = torch.linalg.slogdet(jacobian[0])[1]
        assert torch.allclose(log_abs_det[i], log_det, atol=1e-10)
    # log q by an independent route: the logistic density of eps, divided by |du/deps|.
    uniform = torch.distributions.Uniform(torch.zeros((), dtype=DOUBLE), 1.0)
    sigmoid = torch.distributions.transforms.SigmoidTransform()
    logistic = torch.distributions.TransformedDistribution(uniform, sigmoid.inv)
    log_q_autograd = logistic.log_prob(eps).flatten(1).sum(1) - log_abs_det
    # Sampling with the same generator draws the same eps: the same u and log q.
    u_sampled, log_q_sampled = q.sample_and_log_prob(levels, torch.Generator().manual_seed(seed))
    assert torch.allclose(u_sampled, u, atol=1e-14)
    assert torch.allclose(log_q_sampled, log_q_autograd, atol=1e-10)
    # The density route (data to noise) agrees, and forward inverts inverse.
    assert torch.allclose(q.log_prob(u, levels), log_q_autograd, atol=1e-8)
    eps_back, forward_log_abs_det = q(u, levels)
    assert torch.allclose(eps_back, eps, atol=1e-8)
    assert torch.allclose(forward_log_abs_det, -log_abs_det, atol=1e-8)


def logit_grid(num_points=241, limit=30.0):
    """Trapezoid nodes in h = logit(u) over [-limit, limit]^2, and the weights in u."""
    h = torch.linspace(-limit, limit, num_points, dtype=DOUBLE)
    step = float(h[1] - h[0])
    h1, h2 = torch.meshgrid(h, h, indexing="ij")
    hh = torch.stack([h1.reshape(-1), h2.reshape(-1)], 1)
    u = torch.sigmoid(hh)
    # du = sigma'(h) dh, computed here, not by the code under test
    weights = (u * (1 - u)).prod(1) * step**2
    return u, weights


def test_q_integrates_to_one_and_matches_its_samples() -> None:
    seed = 0
    q = random_dequantizer((1, 1, 2), num_levels=4, seed=seed, scale=0.25, hidden=4)
    u, weights = logit_grid()
    inside = (u > 0).all(1) & (u < 1).all(1)  # float64 rounds the far tails to 0 or 1
    u, weights = u[inside], weights[inside]
    for k in ([0, 3], [2, 1]):
        levels = torch.tensor(k, dtype=DOUBLE).reshape(1, 1, 1, 2).expand(len(u), 1, 1, 2)
        with torch.no_grad():
            density = q.log_prob(u.reshape(-1, 1, 1, 2), levels).exp()
        assert float((density * weights).sum()) == pytest.approx(1.0, abs=1e-3)
        # E_q[u] from the density equals the mean of the samples (4 standard errors).
        mean_quadrature = (density[:, None] * u * weights[:, None]).sum(0)
        samples, _ = q.sample_and_log_prob(levels[:20_000], torch.Generator().manual_seed(seed))
        samples = samples.reshape(-1, 2).detach()
        error = 4 * samples.std(0) / math.sqrt(len(samples))
        assert ((samples.mean(0) - mean_quadrature).abs() < error).all()
        assert (samples.mean(0) - 0.5).abs().max() > 2 * error.max(), "q is not uniform"


def test_a_fresh_dequantizer_is_uniform_dequantisation() -> None:
    q = VariationalDequantizer((1, 2, 3), num_levels=5, hidden_channels=8).double()
    levels = random_levels(16, q.image_shape, q.num_levels)
    u, log_q = q.sample_and_log_prob(levels, torch.Generator().manual_seed(3))
    v = torch.rand(levels.shape, generator=torch.Generator().manual_seed(3), dtype=DOUBLE)
    assert torch.allclose(u, v, atol=1e-14), "sigmoid(logit(v)) = v"
    assert torch.equal(log_q, torch.zeros(16, dtype=DOUBLE))


def test_uniform_dequantizer_draws_the_noise_of_dequantize() -> None:
    levels = random_levels(8, (1, 3, 3), 17)
    uniform = UniformDequantizer(17)
    u, log_q = uniform.sample_and_log_prob(levels, torch.Generator().manual_seed(1))
    assert torch.equal(log_q, torch.zeros(8, dtype=DOUBLE))
    assert torch.equal(uniform.log_prob(u, levels), log_q)
    s_new, ld_new = VariationalDequantizeLogit(uniform)(levels, torch.Generator().manual_seed(1))
    s_old, ld_old = DequantizeLogit(17)(levels, torch.Generator().manual_seed(1))
    assert torch.equal(s_new, s_old) and torch.equal(ld_new, ld_old)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        uniform.log_prob(u + 1, levels)


# --- the bound -------------------------------------------------------------------------------

L_TOY, ALPHA = 4, 0.05
MEAN = torch.tensor([0.3, -0.5], dtype=DOUBLE)
COVARIANCE = torch.tensor([[1.5, 0.9], [0.9, 1.2]], dtype=DOUBLE)
GAUSSIAN = torch.distributions.MultivariateNormal(MEAN, COVARIANCE)


def toy_log_prob_s(s):
    """The toy 'flow': a correlated Gaussian in logit space, on (batch, 1, 1, 2) inputs."""
    return GAUSSIAN.log_prob(s.reshape(len(s), 2))


def toy_log_p_y(y):
    """log p_Y(y) on [0, 1]^2, written out here independently of LogitTransform."""
    w = ALPHA + (1 - 2 * ALPHA) * y
    s = torch.log(w / (1 - w))
    log_slope = math.log(1 - 2 * ALPHA) - torch.log(w) - torch.log(1 - w)
    return GAUSSIAN.log_prob(s) + log_slope.sum(-1)


def gauss_legendre_square(n=48):
    nodes, weights = np.polynomial.legendre.leggauss(n)
    nodes = torch.tensor((nodes + 1) / 2, dtype=DOUBLE)  # on [0, 1]
    weights = torch.tensor(weights / 2, dtype=DOUBLE)
    a, b = torch.meshgrid(nodes, nodes, indexing="ij")
    wa, wb = torch.meshgrid(weights, weights, indexing="ij")
    return torch.stack([a.reshape(-1), b.reshape(-1)], 1), (wa * wb).reshape(-1)


def exact_log_prob(k):
    """log P(k) = log of the mass of p_Y on k's cube, by Gauss-Legendre quadrature."""
    u, weights = gauss_legendre_square()
    y = (torch.tensor(k, dtype=DOUBLE) + u) / L_TOY
    return math.log(float((toy_log_p_y(y).exp() * weights).sum() / L_TOY**2))


def uniform_bound_by_quadrature(k):
    """E_u[log p_Y((k+u)/L)] - D log L with u uniform, by quadrature (nats)."""
    u, weights = gauss_legendre_square()
    y = (torch.tensor(k, dtype=DOUBLE) + u) / L_TOY
    return float((toy_log_p_y(y) * weights).sum()) - 2 * math.log(L_TOY)


TOY_IMAGES = [[0, 0], [1, 2], [3, 1], [2, 2]]


def bound_nats(preprocess, k, draws=4000, seed=0):
    """Monte Carlo bound on log P(k) in nats: mean and standard error."""
    levels = torch.tensor(k, dtype=DOUBLE).reshape(1, 1, 1, 2).expand(draws, 1, 1, 2)
    with torch.no_grad():
        s, log_abs_det = preprocess(levels, torch.Generator().manual_seed(seed))
        values = toy_log_prob_s(s) + log_abs_det - 2 * math.log(L_TOY)
    return float(values.mean()), float(values.std()) / math.sqrt(draws)


def test_the_toy_is_a_distribution() -> None:
    total = sum(math.exp(exact_log_prob([a, b])) for a in range(L_TOY) for b in range(L_TOY))
    assert 0.9 < total < 1.0, "the logit's margin leaves some mass outside [0, 1]^2"


@pytest.mark.parametrize("k", TOY_IMAGES)
def test_uniform_bound_matches_quadrature_and_the_package(k) -> None:
    mean, error = bound_nats(DequantizeLogit(L_TOY, ALPHA), k)
    assert abs(mean - uniform_bound_by_quadrature(k)) < 4 * error + 1e-9
    # The same number in bits/dim through evaluate_bits_per_dim, with the D log L term.
    levels = torch.tensor(k, dtype=DOUBLE).reshape(1, 1, 1, 2).expand(2000, 1, 1, 2)
    bits = evaluate_bits_per_dim(toy_log_prob_s, levels, DequantizeLogit(L_TOY, ALPHA), draws=1)
    expected = float(bits_per_dim(uniform_bound_by_quadrature(k) + 2 * math.log(L_TOY), 2, L_TOY))
    assert bits == pytest.approx(expected, abs=4 * error / (2 * math.log(2)) + 1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_every_bound_lies_below_the_exact_log_probability(seed) -> None:
    q = random_dequantizer((1, 1, 2), num_levels=L_TOY, seed=seed, scale=0.5)
    for k in TOY_IMAGES:
        exact = exact_log_prob(k)
        for preprocess in (DequantizeLogit(L_TOY, ALPHA), VariationalDequantizeLogit(q, ALPHA)):
            mean, error = bound_nats(preprocess, k, seed=seed)
            assert mean <= exact + 4 * error, (k, type(preprocess).__name__, mean, exact)
    # Both bound log P(k); a random q is a worse guess than uniform here.
    mean_uniform, _ = bound_nats(DequantizeLogit(L_TOY, ALPHA), [1, 2])
    mean_random, _ = bound_nats(VariationalDequantizeLogit(q, ALPHA), [1, 2])
    assert mean_random < mean_uniform


@pytest.mark.slow
def test_training_q_closes_the_gap() -> None:
    q = VariationalDequantizer((1, 1, 2), num_levels=L_TOY, hidden_channels=16).double()
    preprocess = VariationalDequantizeLogit(q, ALPHA)
    levels = torch.tensor(TOY_IMAGES, dtype=DOUBLE).reshape(-1, 1, 1, 2).repeat(16, 1, 1, 1)
    optimizer = torch.optim.Adam(q.parameters(), lr=2e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(100):
        s, log_abs_det = preprocess(levels, generator)
        loss = -(toy_log_prob_s(s) + log_abs_det).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for k in TOY_IMAGES:
        exact = exact_log_prob(k)
        uniform_gap = exact - uniform_bound_by_quadrature(k)
        mean, error = bound_nats(preprocess, k, seed=1)
        assert exact - mean > -4 * error, "still a lower bound"
        assert exact - mean < 0.3 * uniform_gap, (k, exact - mean, uniform_gap)


def test_flow_with_dequantizer_trains_both_with_fit() -> None:
    from flowcourse.training import fit

    flow = models.realnvp_image((1, 4, 4), num_scales=1, hidden_channels=4)
    q = VariationalDequantizer((1, 4, 4), num_levels=5, hidden_channels=4)
    pair = FlowWithDequantizer(flow, q)
    data = random_levels(64, (1, 4, 4), 5).float()
    before = {name: p.detach().clone() for name, p in q.named_parameters()}
    history = fit(
        pair,
        data,
        epochs=2,
        batch_size=32,
        preprocess=VariationalDequantizeLogit(q),
        num_levels=5,
        device="cpu",
        progress=False,
    )
    assert history.steps == 4
    changed = [name for name, p in q.named_parameters() if not torch.equal(p, before[name])]
    assert changed, "fit must train the dequantiser's parameters too"
    assert set(pair.state_dict()) == {f"flow.{n}" for n in flow.state_dict()} | {
        f"dequantizer.{n}" for n in q.state_dict()
    }


# --- checks at the door, save and load ------------------------------------------------------


def test_bad_input_raises() -> None:
    q = random_dequantizer()
    levels = random_levels(2, q.image_shape, q.num_levels)
    with pytest.raises(ValueError, match="integers"):
        q.sample_and_log_prob(levels + 0.5)
    with pytest.raises(ValueError, match="integers"):
        q.sample_and_log_prob(levels + q.num_levels)
    with pytest.raises(ValueError, match="shape"):
        q.sample_and_log_prob(levels[:, :, :1])
    with pytest.raises(TypeError, match="torch.Tensor"):
        q.sample_and_log_prob(levels.tolist())
    with pytest.raises(TypeError, match="dtype"):
        q.sample_and_log_prob(levels.float())
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        q.log_prob(torch.ones_like(levels), levels)
    with pytest.raises(ValueError, match="shape"):
        q.log_prob(torch.full((2, 6), 0.5, dtype=DOUBLE), levels)
    with pytest.raises(ValueError, match="finite"):
        q.sample_and_log_prob(levels * float("nan"))
    with pytest.raises(ValueError, match="num_levels"):
        VariationalDequantizer((1, 2, 2), num_levels=1)
    with pytest.raises(ValueError, match="image_shape"):
        VariationalDequantizer((1, 2))
    with pytest.raises(ValueError, match="num_couplings"):
        VariationalDequantizer((1, 2, 2), num_couplings=1)
    with pytest.raises(TypeError, match="dequantizer"):
        VariationalDequantizeLogit(object())
    with pytest.raises(TypeError, match="flow"):
        FlowWithDequantizer(torch.nn.Linear(2, 2), q)
    with pytest.raises(TypeError, match="dequantizer"):
        FlowWithDequantizer(models.realnvp_image((1, 2, 2), num_scales=1), torch.nn.Linear(2, 2))
    # Integer levels are fine: they are converted to the dequantiser's dtype.
    u, _ = q.sample_and_log_prob(levels.long())
    assert u.dtype == DOUBLE
    assert torch.equal(check_levels(torch.tensor([[1, 2]]), 3), torch.tensor([[1.0, 2.0]]))


def test_save_and_load_give_the_same_values(tmp_path) -> None:
    q = random_dequantizer()
    path = tmp_path / "dequantizer.pt"
    io.save(q, path)
    same_architecture = VariationalDequantizer(q.image_shape, q.num_levels, hidden_channels=8)
    again = io.load(path, flow=same_architecture.double())
    levels = random_levels(5, q.image_shape, q.num_levels)
    u, log_q = q.sample_and_log_prob(levels, torch.Generator().manual_seed(0))
    u2, log_q2 = again.sample_and_log_prob(levels, torch.Generator().manual_seed(0))
    assert torch.equal(u, u2) and torch.equal(log_q, log_q2)
    with pytest.raises(ValueError, match="different shapes"):
        io.load(path, flow=VariationalDequantizer(q.image_shape, q.num_levels, hidden_channels=4))


def test_seed_fixes_the_weights_and_leaves_the_global_state() -> None:
    state = torch.get_rng_state()
    a = VariationalDequantizer((1, 2, 2), hidden_channels=4, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    b = VariationalDequantizer((1, 2, 2), hidden_channels=4, seed=3)
    c = VariationalDequantizer((1, 2, 2), hidden_channels=4, seed=4)
    first = next(a.parameters())
    assert torch.equal(first, next(b.parameters()))
    assert not torch.equal(first, next(c.parameters()))


# --- the shipped checkpoints ----------------------------------------------------------------

CHECKPOINTS = ["realnvp_digits_uniform", "realnvp_digits_variational", "realnvp_digits_dequantizer"]


def test_shipped_checkpoints_load_and_the_variational_bound_is_lower() -> None:
    from flowcourse.data import IMAGE_SHAPE, NUM_LEVELS, load_digits_tensors

    loaded = {}
    for name in CHECKPOINTS:
        with as_file(files("flowcourse") / "checkpoints" / f"{name}.pt") as path:
            assert path.stat().st_size < 1_000_000, f"{name}.pt is over 1 MB"
            if name.endswith("dequantizer"):
                loaded[name] = io.load(path, flow=VariationalDequantizer(IMAGE_SHAPE, NUM_LEVELS))
            else:
                loaded[name] = io.load(path)
    flow_uniform, flow_variational, q = (loaded[name].eval() for name in CHECKPOINTS)
    test = load_digits_tensors("test")[:128]
    uniform_bpd = evaluate_bits_per_dim(flow_uniform, test, DequantizeLogit(NUM_LEVELS), draws=2)
    variational_bpd = evaluate_bits_per_dim(
        flow_variational, test, VariationalDequantizeLogit(q), draws=2
    )
    assert 0.5 < variational_bpd < uniform_bpd < math.log2(NUM_LEVELS)
