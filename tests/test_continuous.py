"""Continuous-time flows: the solver's order, the divergence (exact and Hutchinson), the
flow's log-determinant against autograd, its inverse, flow matching, checkpoints, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from flowcourse import io, models
from flowcourse.checks import check_normalized, jacobian
from flowcourse.continuous import (
    SOLVERS,
    ContinuousFlow,
    VelocityMLP,
    exact_divergence,
    fit_flow_matching,
    flow_matching_loss,
    gaussian,
    hutchinson_divergence,
    odeint,
    rademacher,
    straight_path,
)
from flowcourse.core import Flow, StandardNormal
from tests.helpers import randomize_parameters

pytestmark = pytest.mark.usefixtures("float64_by_default", "fixed_seed")


def random_field(features: int = 2, seed: int = 0, scale: float = 0.5) -> VelocityMLP:
    """A smooth MLP field with random weights (a fresh one is v = 0: tests could not fail)."""
    field = VelocityMLP(features, hidden_features=12, num_hidden_layers=2)
    return randomize_parameters(field, seed=seed, scale=scale)


class LinearField(nn.Module):
    r""":math:`v(z, t) = (A_0 + t A_1) z`: the flow map and its log-determinant are known."""

    def __init__(self, a0: torch.Tensor, a1: torch.Tensor) -> None:
        super().__init__()
        self.a0, self.a1 = nn.Parameter(a0), nn.Parameter(a1)
        self.features = a0.shape[0]

    def forward(self, z: torch.Tensor, t: float) -> torch.Tensor:
        return z @ (self.a0 + t * self.a1).T


# ------------------------------------------------------------------------- the solver


def oscillator(t: float, y: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """y1' = y2, y2' = -y1 + cos(t)... kept time-dependent so every stage's t matters."""
    position, speed = y
    return speed, -position + torch.cos(torch.as_tensor(t, dtype=position.dtype))


def oscillator_solution(t: float) -> tuple[float, float]:
    # y(0) = 1, y'(0) = 0 for y'' + y = cos t: y = cos t + t sin t / 2.
    return math.cos(t) + t * math.sin(t) / 2, -math.sin(t) + (math.sin(t) + t * math.cos(t)) / 2


@pytest.mark.parametrize("method", sorted(SOLVERS))
def test_solver_order_of_accuracy(method):
    """Halving the step divides the global error by about 2^order."""
    order = SOLVERS[method].order
    t1 = 2.0
    exact = torch.tensor(oscillator_solution(t1))
    errors = []
    for num_steps in (10, 20, 40, 80):
        y = odeint(oscillator, (torch.ones(1), torch.zeros(1)), 0.0, t1, num_steps, method)
        errors.append(float((torch.cat(y) - exact).abs().max()))
    rates = [math.log2(a / b) for a, b in zip(errors, errors[1:], strict=False)]
    assert abs(rates[-1] - order) < 0.15, (method, errors, rates)
    assert errors[-1] < 0.1**order, (method, errors)


@pytest.mark.parametrize("method", sorted(SOLVERS))
def test_solver_runs_backwards_in_time(method):
    """Integrating from t1 back to t0 returns (close to) the start, the closer the finer."""
    start = (torch.ones(1), torch.zeros(1))
    errors = []
    for num_steps in (20, 40):
        end = odeint(oscillator, start, 0.0, 1.5, num_steps, method)
        back = odeint(oscillator, end, 1.5, 0.0, num_steps, method)
        errors.append(float((torch.cat(back) - torch.cat(start)).abs().max()))
    assert errors[1] < errors[0] / 1.8 and errors[1] < 0.05


def test_solver_path_and_cost():
    calls = []

    def decay(t, y):
        calls.append(t)
        return (-y[0],)

    path = odeint(
        decay, (torch.ones(3),), 0.0, 1.0, num_steps=5, method="midpoint", return_path=True
    )
    assert len(path) == 6 and torch.equal(path[0][0], torch.ones(3))
    assert len(calls) == 5 * SOLVERS["midpoint"].evaluations_per_step
    assert calls[0] == 0.0 and calls[1] == pytest.approx(0.1)  # the midpoint stage


# --------------------------------------------------------------------- the divergence


def test_exact_divergence_is_the_trace_of_the_jacobian():
    field = random_field(3, seed=1)
    z = torch.randn(6, 3)
    for t in (0.0, 0.3, 1.0):
        v, divergence = exact_divergence(lambda p, t=t: field(p, t), z)
        jac = torch.stack(
            [torch.autograd.functional.jacobian(lambda p, t=t: field(p[None], t)[0], s) for s in z]
        )
        assert torch.allclose(v, field(z, t))
        assert torch.allclose(divergence, jac.diagonal(dim1=1, dim2=2).sum(dim=1), atol=1e-12)
        assert divergence.abs().max() > 1e-2  # a real test: the trace is not zero


def test_divergence_works_under_no_grad_and_is_differentiable_otherwise():
    field = random_field(2, seed=2)
    z = torch.randn(4, 2)
    with torch.no_grad():
        v, divergence = exact_divergence(lambda p: field(p, 0.5), z)
    assert not divergence.requires_grad and not v.requires_grad
    # With gradients on, d(divergence)/d(theta) agrees with finite differences.
    weight = field.net[0].weight
    _, divergence = exact_divergence(lambda p: field(p, 0.5), z)
    (gradient,) = torch.autograd.grad(divergence.sum(), weight)
    step = 1e-6
    with torch.no_grad():
        weight[0, 1] += step
        plus = exact_divergence(lambda p: field(p, 0.5), z)[1].sum()
        weight[0, 1] -= 2 * step
        minus = exact_divergence(lambda p: field(p, 0.5), z)[1].sum()
        weight[0, 1] += step
    assert float(gradient[0, 1]) == pytest.approx(float(plus - minus) / (2 * step), rel=1e-5)


def test_divergence_of_a_field_that_ignores_z_is_zero():
    z = torch.randn(3, 2)
    _, exact = exact_divergence(lambda p: torch.ones_like(p), z)
    _, estimate = hutchinson_divergence(lambda p: torch.ones_like(p), z)
    assert torch.equal(exact, torch.zeros(3)) and torch.equal(estimate, torch.zeros(3))


def symmetric_part_norms(jac: torch.Tensor) -> tuple[float, float]:
    """||S||_F^2 and sum_i S_ii^2 for S = (J + J^T) / 2."""
    s = (jac + jac.T) / 2
    return float((s**2).sum()), float((s.diagonal() ** 2).sum())


@pytest.mark.parametrize(
    ("probe", "variance_of_one"),
    [(rademacher, lambda f, d: 2 * (f - d)), (gaussian, lambda f, d: 2 * f)],
)
def test_hutchinson_is_unbiased_with_the_predicted_variance(probe, variance_of_one):
    """Mean over many probes -> the exact trace; variance = (formula) / n."""
    field = random_field(3, seed=3)
    point = torch.randn(1, 3)
    jac = torch.autograd.functional.jacobian(lambda p: field(p[None], 0.4)[0], point[0])
    exact = float(jac.trace())
    predicted = variance_of_one(*symmetric_part_norms(jac))
    assert predicted > 0.01  # a real test: one probe is noisy here
    repeats = 4000
    generator = torch.Generator().manual_seed(0)
    variances = {}
    for n in (1, 4, 16):
        z = point.expand(repeats, 3)  # one estimate per row, each with its own n probes
        _, estimates = hutchinson_divergence(lambda p: field(p, 0.4), z, n, probe, generator)
        mean, variance = float(estimates.detach().mean()), float(estimates.detach().var())
        assert abs(mean - exact) < 5 * math.sqrt(predicted / n / repeats), (n, mean, exact)
        # The sample variance of 4000 draws is within about 10% of the truth.
        assert variance == pytest.approx(predicted / n, rel=0.15), (n, variance, predicted / n)
        variances[n] = variance
    assert variances[1] / variances[16] == pytest.approx(16, rel=0.3)


def test_rademacher_is_exact_for_a_diagonal_jacobian():
    z = torch.randn(5, 4)
    _, estimate = hutchinson_divergence(lambda p: torch.tanh(p) * 3, z)
    _, exact = exact_divergence(lambda p: torch.tanh(p) * 3, z)
    assert torch.allclose(estimate, exact, atol=1e-12)
    _, noisy = hutchinson_divergence(lambda p: torch.tanh(p) * 3, z, probe=gaussian)
    assert not torch.allclose(noisy, exact, atol=1e-3)  # Gaussian probes are not


# ------------------------------------------------------------------- the flow itself


def test_log_det_converges_to_the_autograd_jacobian_of_the_integrated_map():
    """The integrated trace is the log-det of the *continuous* map; the discrete map's
    log-det differs by the solver's error, which falls like h^order."""
    field = random_field(2, seed=4)
    x = torch.randn(3, 2)
    for method, minimum_ratio in (("euler", 1.6), ("midpoint", 3.0), ("rk4", 10.0)):
        errors = []
        for num_steps in (8, 16, 32):
            flow = ContinuousFlow(field, num_steps=num_steps, method=method)
            with torch.no_grad():
                _, log_abs_det = flow(x)
            reference = torch.linalg.slogdet(jacobian(flow, x)).logabsdet
            errors.append(float((log_abs_det - reference).abs().max()))
        assert errors[0] > 1e-9, "a real test: the discrete and continuous log-dets differ"
        assert errors[1] < errors[0] / minimum_ratio and errors[2] < errors[1] / minimum_ratio, (
            method,
            errors,
        )
    assert errors[-1] < 1e-5  # RK4 with 32 steps


def test_linear_field_gives_the_exact_log_det():
    r"""v = (A0 + t A1) z: log|det dz1/dx| = tr A0 + tr A1 / 2 at every x, for any number of
    steps of a method that integrates a linear function of t exactly; for a constant A
    the map converges to expm(A)."""
    generator = torch.Generator().manual_seed(5)
    a0, a1 = torch.randn(3, 3, generator=generator), torch.randn(3, 3, generator=generator)
    x = torch.randn(4, 3)
    expected = float(a0.trace() + a1.trace() / 2)
    for method in ("midpoint", "rk4"):
        for num_steps in (1, 3):
            flow = ContinuousFlow(LinearField(a0, a1), num_steps=num_steps, method=method)
            _, log_abs_det = flow(x)
            assert torch.allclose(log_abs_det, torch.full((4,), expected), atol=1e-12)
    constant = ContinuousFlow(LinearField(a0, torch.zeros(3, 3)), num_steps=64, method="rk4")
    z, log_abs_det = constant(x)
    assert torch.allclose(z, x @ torch.linalg.matrix_exp(a0).T, atol=1e-6)
    assert torch.allclose(log_abs_det, torch.full((4,), float(a0.trace())), atol=1e-12)


@pytest.mark.parametrize("method", sorted(SOLVERS))
def test_round_trip_converges(method):
    field = random_field(2, seed=6)
    x = torch.randn(5, 2)
    errors = []
    for num_steps in (16, 64):
        flow = ContinuousFlow(field, num_steps=num_steps, method=method)
        with torch.no_grad():
            z, log_abs_det = flow(x)
            x_back, log_abs_det_inverse = flow.inverse(z)
        assert (z - x).abs().max() > 0.1  # the map really moves x
        errors.append(float((x_back - x).abs().max()))
        assert float((log_abs_det + log_abs_det_inverse).abs().max()) < 10 * errors[-1] + 1e-12
    assert errors[1] < errors[0] / 3
    if method == "rk4":
        assert errors[1] < 1e-7


def test_fresh_flow_is_the_identity_and_accepts_context():
    flow = ContinuousFlow(VelocityMLP(3, hidden_features=8), num_steps=3)
    x = torch.randn(4, 3)
    z, log_abs_det = flow(x, context=None)
    assert torch.equal(z, x) and torch.equal(log_abs_det, torch.zeros(4))
    x_back, _ = flow.inverse(z, context=None)
    assert torch.equal(x_back, x)


def test_transport_matches_forward_and_returns_the_path():
    flow = ContinuousFlow(random_field(2, seed=7), num_steps=5, method="midpoint")
    x = torch.randn(3, 2)
    z, _ = flow(x)
    assert torch.allclose(flow.transport(x), z, atol=1e-14)
    path = flow.transport(x, return_path=True)
    assert path.shape == (6, 3, 2) and torch.equal(path[0], x)
    assert torch.allclose(path[-1], z, atol=1e-14)
    back = flow.transport(z, 1.0, 0.0)
    assert torch.allclose(back, flow.inverse(z)[0], atol=1e-14)
    assert flow.evaluations == 10


def test_flow_density_integrates_to_one():
    flow = Flow(ContinuousFlow(random_field(2, seed=8, scale=0.4), num_steps=8), StandardNormal(2))
    result = check_normalized(flow, bounds=(-7.0, 7.0), resolution=160, tolerance=0.01)
    assert result, result.message
    with torch.no_grad():  # and it is not the base density in disguise
        x = torch.randn(8, 2)
        assert (flow.log_prob(x) - flow.base.log_prob(x)).abs().max() > 0.05


def test_gradients_of_log_prob_reach_every_parameter_and_match_finite_differences():
    flow = Flow(
        ContinuousFlow(random_field(2, seed=9), num_steps=3, method="rk4"), StandardNormal(2)
    )
    x = torch.randn(6, 2)
    flow.log_prob(x).sum().backward()
    for name, parameter in flow.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    bias = flow.transform.velocity.net[2].bias
    step = 1e-6
    with torch.no_grad():
        bias[3] += step
        plus = flow.log_prob(x).sum()
        bias[3] -= 2 * step
        minus = flow.log_prob(x).sum()
        bias[3] += step
    assert float(bias.grad[3]) == pytest.approx(float(plus - minus) / (2 * step), rel=1e-5)


def test_checkpoint_round_trip(tmp_path):
    flow = randomize_parameters(
        models.cnf(2, hidden_features=8, num_steps=6, method="midpoint"), seed=10, scale=0.4
    )
    path = tmp_path / "cnf.pt"
    io.save(flow, path)
    again = io.load(path)
    assert again.transform.num_steps == 6 and again.transform.method == "midpoint"
    x = torch.randn(5, 2)
    with torch.no_grad():
        assert torch.equal(flow.log_prob(x), again.log_prob(x))
        assert (flow.log_prob(x) - flow.base.log_prob(x)).abs().max() > 1e-3


def test_sampling_draws_from_the_flow():
    flow = Flow(ContinuousFlow(random_field(2, seed=11), num_steps=16), StandardNormal(2))
    torch.manual_seed(3)
    samples = flow.sample(4)
    torch.manual_seed(3)
    z = flow.base.sample(4)
    assert torch.allclose(samples, flow.transform.transport(z, 1.0, 0.0), atol=1e-12)
    z_back, _ = flow(samples)
    assert torch.allclose(z_back, z, atol=1e-6)


# ---------------------------------------------------------------------- flow matching


def test_straight_path_and_its_velocity():
    x, noise = torch.randn(5, 3), torch.randn(5, 3)
    t = torch.rand(5)
    z_t, target = straight_path(x, noise, t)
    assert torch.allclose(straight_path(x, noise, 0.0)[0], x)
    assert torch.allclose(straight_path(x, noise, 1.0)[0], noise)
    step = 1e-6  # the target is the time derivative of the path
    z_later, _ = straight_path(x, noise, t + step)
    assert torch.allclose((z_later - z_t) / step, target, atol=1e-8)
    assert torch.allclose(target, noise - x)


def test_flow_matching_loss_on_a_point_mass():
    """Data all at a: the marginal velocity is (z - a) / t, whose loss is zero; the zero
    field's loss is E||noise - a||^2 = D + ||a||^2."""
    a = torch.tensor([1.5, -0.5, 2.0])
    x = a.expand(50_000, 3)
    best = flow_matching_loss(
        lambda z, t: (z - a) / t[:, None], x, torch.Generator().manual_seed(0)
    )
    assert float(best) < 1e-10
    zero = flow_matching_loss(lambda z, t: torch.zeros_like(z), x, torch.Generator().manual_seed(0))
    expected = 3 + float(a @ a)
    assert float(zero) == pytest.approx(expected, abs=5 * math.sqrt(2 * 3 + 4 * float(a @ a)) / 220)


def test_flow_matching_loss_is_minimal_at_the_gaussian_marginal_velocity():
    """For x ~ N(m, s^2) the marginal velocity is linear in z; adding a constant c to it
    raises the expected loss by exactly c^2."""
    m, s = 1.0, 0.5

    def marginal(z, t):
        t = t[:, None]
        variance = (1 - t) ** 2 * s**2 + t**2
        return -m + (t - (1 - t) * s**2) / variance * (z - (1 - t) * m)

    x = m + s * torch.randn(200_000, 1)
    losses = {}
    for c in (0.0, 0.3, -0.5):
        generator = torch.Generator().manual_seed(1)
        losses[c] = float(flow_matching_loss(lambda z, t, c=c: marginal(z, t) + c, x, generator))
    for c in (0.3, -0.5):
        assert losses[c] - losses[0.0] == pytest.approx(c**2, abs=0.01)


@pytest.mark.slow
def test_flow_matching_learns_a_gaussian_and_its_exact_likelihood():
    """End to end: train by flow matching, score by integrating the divergence."""
    mean, std = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 1.5])
    generator = torch.Generator().manual_seed(0)
    data = mean + std * torch.randn(4000, 2, generator=generator)
    flow = models.cnf(2, hidden_features=32, num_hidden_layers=2, num_steps=8).double()
    history = fit_flow_matching(
        flow, data, steps=600, batch_size=256, learning_rate=5e-3, device="cpu", progress=False
    )
    assert history.steps == 600 and history.seconds > 0
    assert sum(history.step_loss[-50:]) < sum(history.step_loss[:50])
    test = mean + std * torch.randn(500, 2, generator=generator)
    truth = torch.distributions.Normal(mean, std).log_prob(test).sum(dim=1)
    with torch.no_grad():
        model = flow.log_prob(test)
    assert float((model - truth).mean().abs()) < 0.05, float((model - truth).mean())


def test_fit_flow_matching_is_deterministic_and_leaves_the_global_random_state():
    data = torch.randn(300, 2)
    losses = []
    for seed in (3, 3, 4):
        flow = models.cnf(2, hidden_features=8, num_hidden_layers=1)
        state = torch.get_rng_state()
        losses.append(
            fit_flow_matching(
                flow, data, steps=5, batch_size=64, device="cpu", progress=False, seed=seed
            ).step_loss
        )
        assert torch.equal(torch.get_rng_state(), state)
        assert not flow.training
    assert losses[0] == losses[1]
    assert losses[0] != losses[2]  # the seed draws the batches, the times and the noise


# ------------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: ContinuousFlow(lambda z, t: z), TypeError, "velocity to be an nn.Module"),
        (lambda: ContinuousFlow(VelocityMLP(2), num_steps=0), ValueError, "num_steps"),
        (lambda: ContinuousFlow(VelocityMLP(2), method="rk5"), ValueError, "'euler'"),
        (lambda: ContinuousFlow(VelocityMLP(2), method=4), TypeError, "solver's name"),
        (lambda: VelocityMLP(0), ValueError, "features"),
        (lambda: VelocityMLP(2, hidden_features=2.5), TypeError, "hidden_features"),
        (lambda: models.cnf(2, method="heun"), ValueError, "method"),
    ],
)
def test_bad_construction_raises(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize(
    ("x", "error", "message"),
    [
        (torch.zeros(4, 3), ValueError, r"expected x of shape \(batch, 2\)"),
        (torch.zeros(4), ValueError, r"expected x of shape \(batch, 2\)"),
        (torch.full((4, 2), float("nan")), ValueError, "finite"),
        (torch.zeros(4, 2, dtype=torch.float32), TypeError, "dtype"),
        (torch.zeros(4, 2, dtype=torch.long), TypeError, "floating-point"),
        ([[0.0, 0.0]], TypeError, "torch.Tensor"),
    ],
)
def test_bad_input_to_the_flow_raises(x, error, message):
    flow = ContinuousFlow(VelocityMLP(2, hidden_features=4), num_steps=2)
    with pytest.raises(error, match=message):
        flow(x)
    with pytest.raises(error, match=message.replace("x of", "z of")):
        flow.inverse(x)


def test_bad_input_to_the_parts_raises():
    field = VelocityMLP(2, hidden_features=4)
    with pytest.raises(ValueError, match=r"z of shape \(batch, 2\)"):
        field(torch.zeros(3, 5), 0.5)
    with pytest.raises(ValueError, match=r"t to be a number or a tensor of shape \(3,\)"):
        field(torch.zeros(3, 2), torch.zeros(4))
    with pytest.raises(TypeError, match="tuple of tensors"):
        odeint(lambda t, y: y, torch.zeros(2), 0.0, 1.0, 4)
    with pytest.raises(ValueError, match="num_steps"):
        odeint(lambda t, y: y, (torch.zeros(2),), 0.0, 1.0, 0)
    with pytest.raises(ValueError, match="shape of z"):
        exact_divergence(lambda p: p.sum(dim=1), torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"z of shape \(batch, features\)"):
        exact_divergence(lambda p: p, torch.zeros(3))
    with pytest.raises(ValueError, match="num_probes"):
        hutchinson_divergence(lambda p: p, torch.zeros(3, 2), num_probes=0)
    with pytest.raises(TypeError, match="probe"):
        hutchinson_divergence(lambda p: p, torch.zeros(3, 2), probe="rademacher")
    with pytest.raises(ValueError, match="same shape"):
        straight_path(torch.zeros(3, 2), torch.zeros(3, 3), 0.5)
    with pytest.raises(ValueError, match=r"of shape \(3,\)"):
        straight_path(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(2))
    with pytest.raises(ValueError, match=r"x of shape \(batch, D\)"):
        flow_matching_loss(lambda z, t: z, torch.zeros(3))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(steps=0), ValueError, "steps"),
        (dict(batch_size=-1), ValueError, "batch_size"),
        (dict(learning_rate=0.0), ValueError, "learning_rate"),
        (dict(learning_rate=float("inf")), ValueError, "learning_rate"),
        (dict(learning_rate="fast"), TypeError, "learning_rate"),
        (dict(max_grad_norm=-1.0), ValueError, "max_grad_norm"),
        (dict(preprocess=3), TypeError, "preprocess"),
    ],
)
def test_bad_training_arguments_raise(kwargs, error, message):
    with pytest.raises(error, match=message):
        fit_flow_matching(models.cnf(2), torch.zeros(10, 2), progress=False, **kwargs)


def test_training_something_that_is_not_a_field_raises():
    with pytest.raises(TypeError, match="velocity nn.Module"):
        fit_flow_matching(lambda z, t: z, torch.zeros(10, 2), progress=False)
    with pytest.raises(ValueError, match="train_data"):
        fit_flow_matching(models.cnf(2), torch.zeros(0, 2), progress=False)
