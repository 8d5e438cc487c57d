"""The graded questions of the flow-matching chapter: right answers earn every point,
plausible mistakes lose points, trivial answers earn nothing."""

import importlib

import torch

from flowcourse.continuous import exact_divergence, straight_path
from flowcourse.exercises import grade_answer, question
from flowcourse.exercises.flow_matching import gaussian_marginal_velocity
from tests.exercises.contract import contract_tests, raising_stub

# --- flow_matching.conditional_path ------------------------------------------------


def conditional_path(x, noise, t):
    """The book's solution."""
    t = t[:, None]
    return (1 - t) * x + t * noise, noise - x


def lipman_time(x, noise, t):  # data at t = 1: the other convention
    t = t[:, None]
    return t * x + (1 - t) * noise, x - noise


def sign_flipped_target(x, noise, t):
    z_t, target = conditional_path(x, noise, t)
    return z_t, -target


def target_is_the_noise(x, noise, t):
    z_t, _ = conditional_path(x, noise, t)
    return z_t, noise


def unbroadcast_time(x, noise, t):  # t.T * x mixes samples only when batch == D; crashes else
    return (1 - t) * x.T, noise - x


def path_returns_inputs(x, noise, t):
    return x, noise


def path_zeros(x, noise, t):
    return torch.zeros_like(x), torch.zeros_like(x)


# --- flow_matching.gaussian_velocity -----------------------------------------------


def gaussian_velocity(z, t, mean, std):
    """The book's solution: Gaussian conditioning, coordinate by coordinate."""
    t = t[:, None]
    mean_z = (1 - t) * mean
    variance_z = (1 - t) ** 2 * std**2 + t**2
    covariance = t - (1 - t) * std**2  # Cov(noise - x, z_t)
    return -mean + covariance / variance_z * (z - mean_z)


def without_mean_of_target(z, t, mean, std):
    return gaussian_velocity(z, t, mean, std) + mean


def variance_not_squared(z, t, mean, std):  # std where std^2 belongs
    t = t[:, None]
    return -mean + (t - (1 - t) * std) / ((1 - t) ** 2 * std + t**2) * (z - (1 - t) * mean)


def lipman_gaussian(z, t, mean, std):  # the same formula with t -> 1 - t and v -> -v
    return -gaussian_velocity(z, 1 - t, mean, std)


def conditional_not_marginal(z, t, mean, std):  # (z - x)/t with x replaced by its mean
    return (z - mean) / t[:, None]


# --- flow_matching.log_density_step ------------------------------------------------


def divergence(velocity, z, t):
    z = z.detach().requires_grad_(True)
    v = velocity(z, t)
    trace = torch.zeros(z.shape[0], dtype=z.dtype)
    for i in range(z.shape[1]):
        (row,) = torch.autograd.grad(v[:, i].sum(), z, retain_graph=True)
        trace = trace + row[:, i]
    return v.detach(), trace.detach()


def euler_log_density_step(velocity, z, log_abs_det, t, dt):
    """The book's solution."""
    v, trace = divergence(velocity, z, t)
    return z + dt * v, log_abs_det + dt * trace


def log_density_sign(velocity, z, log_abs_det, t, dt):  # d log p / dt, not d log|det| / dt
    v, trace = divergence(velocity, z, t)
    return z + dt * v, log_abs_det - dt * trace


def trace_at_the_new_point(velocity, z, log_abs_det, t, dt):
    v, _ = divergence(velocity, z, t)
    z_next = z + dt * v
    _, trace = divergence(velocity, z_next, t + dt)
    return z_next, log_abs_det + dt * trace


def forgets_dt(velocity, z, log_abs_det, t, dt):
    v, trace = divergence(velocity, z, t)
    return z + dt * v, log_abs_det + trace


def sum_of_all_entries(velocity, z, log_abs_det, t, dt):
    z_leaf = z.detach().requires_grad_(True)
    v = velocity(z_leaf, t)
    (column_sums,) = torch.autograd.grad(v.sum(), z_leaf)
    return z + dt * v.detach(), log_abs_det + dt * column_sums.sum(dim=1)


def discrete_log_det(velocity, z, log_abs_det, t, dt):  # log|det(I + dt J)|: not the ODE step
    v = velocity(z, t)
    jac = torch.stack(
        [torch.autograd.functional.jacobian(lambda p: velocity(p[None], t)[0], s) for s in z]
    )
    eye = torch.eye(z.shape[1], dtype=z.dtype)
    return z + dt * v.detach(), log_abs_det + torch.linalg.slogdet(eye + dt * jac).logabsdet


def step_identity(velocity, z, log_abs_det, t, dt):
    return z, log_abs_det


def step_zeros(velocity, z, log_abs_det, t, dt):
    return torch.zeros_like(z), torch.zeros_like(log_abs_det)


(
    test_the_solution_earns_every_point,
    test_a_stub_earns_nothing_and_is_not_answered,
    test_a_wrong_answer_loses_points,
    test_a_trivial_answer_earns_nothing,
) = contract_tests(
    correct={
        "flow_matching.conditional_path": conditional_path,
        "flow_matching.gaussian_velocity": gaussian_velocity,
        "flow_matching.log_density_step": euler_log_density_step,
    },
    stubs={
        "flow_matching.conditional_path": [raising_stub("flow_matching.conditional_path")],
        "flow_matching.gaussian_velocity": [raising_stub("flow_matching.gaussian_velocity")],
        "flow_matching.log_density_step": [raising_stub("flow_matching.log_density_step")],
    },
    wrong={
        "flow_matching.conditional_path": [
            lipman_time,
            sign_flipped_target,
            target_is_the_noise,
            unbroadcast_time,
        ],
        "flow_matching.gaussian_velocity": [
            without_mean_of_target,
            variance_not_squared,
            lipman_gaussian,
            conditional_not_marginal,
        ],
        "flow_matching.log_density_step": [
            log_density_sign,
            trace_at_the_new_point,
            forgets_dt,
            sum_of_all_entries,
            discrete_log_det,
        ],
    },
    trivial={
        "flow_matching.conditional_path": [path_returns_inputs, path_zeros],
        "flow_matching.gaussian_velocity": [
            lambda z, t, mean, std: torch.zeros_like(z),
            lambda z, t, mean, std: z,
        ],
        "flow_matching.log_density_step": [step_identity, step_zeros],
    },
)


def test_the_protected_objects_exist_and_include_every_reference():
    protected = set()
    for question_id in ("conditional_path", "gaussian_velocity", "log_density_step"):
        for name in question(f"flow_matching.{question_id}").protected:
            module_name, _, qualname = name.partition(":")
            target = importlib.import_module(module_name)
            for part in qualname.split("."):
                target = getattr(target, part)
            assert callable(target), name
            protected.add(target)
    assert gaussian_marginal_velocity in protected  # public, so a submission could import it
    assert straight_path in protected and exact_divergence in protected


def test_the_reference_is_the_solution():
    generator = torch.Generator().manual_seed(0)
    z, t = torch.randn(5, 2, generator=generator), torch.rand(5, generator=generator)
    mean, std = torch.tensor([1.0, -0.5]), torch.tensor([0.3, 2.0])
    assert torch.allclose(
        gaussian_marginal_velocity(z, t, mean, std), gaussian_velocity(z, t, mean, std)
    )


def test_the_time_convention_is_explained():
    score = grade_answer("flow_matching.conditional_path", lipman_time, seed=0)
    assert score.points == 0
    assert any(r.name == "time convention" and "t = 0" in r.message for r in score.results)


def test_a_correct_position_with_a_wrong_log_det_keeps_the_position_points():
    score = grade_answer("flow_matching.log_density_step", log_density_sign, seed=1)
    assert score.points == 1.0, score.report()
