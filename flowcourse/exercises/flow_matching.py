r"""Graded questions of the chapter *Continuous-time flows and flow matching*.

Time convention of the course: data at :math:`t = 0`, noise at :math:`t = 1`.

- ``flow_matching.conditional_path`` (exercise ``fm-ex-path``, part 1): the straight
  path :math:`z_t = (1 - t)x + t\varepsilon` and its velocity :math:`\varepsilon - x`.
- ``flow_matching.gaussian_velocity`` (exercise ``fm-ex-path``, part 2): the marginal
  velocity :math:`\mathbb{E}[\varepsilon - x \mid z_t = z]` when the data are Gaussian
  with independent coordinates, the minimiser of the flow-matching loss.
- ``flow_matching.log_density_step`` (exercise ``fm-ex-step``): one Euler step of the
  joint ODE of the position and the log-determinant,
  :math:`(z, \ell) \mapsto (z + h\, v(z, t),\ \ell + h \operatorname{tr}\,\partial v/\partial z)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from flowcourse.exercises.question import Question, Result, attempt, compare, diagnostic

__all__ = ["QUESTIONS", "SELF_ASSESSED", "gaussian_marginal_velocity"]


def _randint(generator: torch.Generator, low: int, high: int) -> int:
    """An integer in ``[low, high]`` (both included)."""
    return int(torch.randint(low, high + 1, (1,), generator=generator))


def _uniform(generator: torch.Generator, low: float, high: float, shape=()) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)


def _call_part(answer: Any, arguments: tuple[Tensor, ...], index: int) -> Any:
    """``answer(*arguments)[index]``, on copies of the arguments."""
    result = answer(*(a.clone() for a in arguments))
    if not isinstance(result, tuple | list) or len(result) != 2:
        raise TypeError(f"expected a pair (tuple of two tensors), got {type(result).__name__}")
    return result[index]


# --- flow_matching.conditional_path ------------------------------------------------


def _path_inputs(generator: torch.Generator) -> dict[str, Any]:
    batch, features = _randint(generator, 5, 9), _randint(generator, 2, 4)
    t = _uniform(generator, 0.05, 0.95, (batch,))
    return {
        "x": 2 * torch.randn(batch, features, generator=generator, dtype=torch.float64) + 1,
        "noise": torch.randn(batch, features, generator=generator, dtype=torch.float64),
        "t": t,
    }


def _respond_path(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    arguments = (inputs["x"], inputs["noise"], inputs["t"])
    attempt(outputs, "z_t", lambda: _call_part(answer, arguments, 0))
    attempt(outputs, "target", lambda: _call_part(answer, arguments, 1))
    return outputs


def _judge_path(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    x, noise, t = inputs["x"], inputs["noise"], inputs["t"][:, None]
    results = [
        compare("z_t", outputs, "z_t", (1 - t) * x + t * noise, 1.0, "z_t", 1e-9, 1e-9),
        compare("target", outputs, "target", noise - x, 1.0, "the target velocity", 1e-9, 1e-9),
    ]
    reversed_path = t * x + (1 - t) * noise  # Lipman et al.'s time: noise at 0, data at 1
    z_t = outputs.get("z_t")
    if isinstance(z_t, Tensor) and z_t.shape == x.shape and torch.allclose(z_t, reversed_path):
        message = (
            "your path puts the data at t = 1 and the noise at t = 0 (the convention of "
            "Lipman et al.); this course puts the data at t = 0"
        )
        results.append(diagnostic("time convention", False, message))
    return results


CONDITIONAL_PATH = Question(
    id="flow_matching.conditional_path",
    exercise="fm-ex-path",
    title="The straight path and its velocity",
    answer_name="conditional_path",
    kind="function",
    contract=(
        "conditional_path(x, noise, t) -> (z_t, target). x, noise: float64 tensors "
        "(batch, D); t: float64 tensor (batch,) of times in (0, 1), one per sample. "
        "z_t (batch, D) is the point at time t on the straight line from the data x "
        "(t = 0) to the noise (t = 1), travelled at constant speed; target (batch, D) "
        "is its velocity dz_t/dt."
    ),
    points=2.0,
    make_inputs=_path_inputs,
    respond=_respond_path,
    judge=_judge_path,
    protected=("flowcourse.continuous.flow_matching:straight_path",),
    open_book="flowcourse.continuous.straight_path is the reference.",
)


# --- flow_matching.gaussian_velocity -----------------------------------------------


def gaussian_marginal_velocity(z: Tensor, t: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    r"""The marginal velocity of straight paths for Gaussian data.

    When :math:`x \sim \mathcal{N}(m, \operatorname{diag} s^2)`, the target
    :math:`u = \varepsilon - x` and the point :math:`z_t = (1-t)x + t\varepsilon` are
    jointly Gaussian, coordinate by coordinate, so

    .. math::

        \mathbb{E}[u \mid z_t = z] = -m + \frac{t - (1 - t)s^2}{(1 - t)^2 s^2 + t^2}
        \big(z - (1 - t)m\big).

    ``z`` is ``(batch, D)``, ``t`` is ``(batch,)``, ``mean`` and ``std`` are ``(D,)``.
    The reference of the question ``flow_matching.gaussian_velocity``.
    """
    t = t[:, None]
    variance = (1 - t) ** 2 * std**2 + t**2
    covariance = t - (1 - t) * std**2
    return -mean + covariance / variance * (z - (1 - t) * mean)


def _gaussian_inputs(generator: torch.Generator) -> dict[str, Any]:
    batch, features = _randint(generator, 6, 10), _randint(generator, 1, 3)
    mean = _uniform(generator, -2.0, 2.0, (features,))
    std = _uniform(generator, 0.2, 2.0, (features,))
    t = _uniform(generator, 0.05, 0.95, (batch,))
    z = 1.5 * torch.randn(batch, features, generator=generator, dtype=torch.float64)
    return {"z": z, "t": t, "mean": mean, "std": std}


def _respond_gaussian(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    arguments = [inputs[key].clone() for key in ("z", "t", "mean", "std")]
    attempt(outputs, "velocity", lambda: answer(*arguments))
    return outputs


def _judge_gaussian(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    expected = gaussian_marginal_velocity(inputs["z"], inputs["t"], inputs["mean"], inputs["std"])
    where = f"v(z, t) for data N(m = {inputs['mean'].tolist()}, s = {inputs['std'].tolist()})"
    return [compare("marginal velocity", outputs, "velocity", expected, 3.0, where, 1e-8, 1e-8)]


GAUSSIAN_VELOCITY = Question(
    id="flow_matching.gaussian_velocity",
    exercise="fm-ex-path",
    title="The velocity that flow matching learns, for Gaussian data",
    answer_name="gaussian_velocity",
    kind="function",
    contract=(
        "gaussian_velocity(z, t, mean, std) -> (batch, D) float64 tensor: the minimiser "
        "of the flow-matching loss E||v(z_t, t) - (noise - x)||^2 for straight paths "
        "z_t = (1 - t) x + t noise, when the data x ~ N(mean, diag(std^2)) and "
        "noise ~ N(0, I). z: (batch, D); t: (batch,) in (0, 1); mean, std: (D,)."
    ),
    points=3.0,
    make_inputs=_gaussian_inputs,
    respond=_respond_gaussian,
    judge=_judge_gaussian,
    protected=("flowcourse.exercises.flow_matching:gaussian_marginal_velocity",),
    open_book=(
        "flowcourse.exercises.flow_matching.gaussian_marginal_velocity is the reference; "
        "it is blocked while the question is graded."
    ),
)


# --- flow_matching.log_density_step ------------------------------------------------

_STEP_CASES = 2  # a step forwards in time and one backwards


def _draw_field(generator: torch.Generator, features: int) -> dict[str, Tensor]:
    hidden = _randint(generator, 4, 8)
    return {
        "w_in": 0.8 * torch.randn(hidden, features + 1, generator=generator, dtype=torch.float64),
        "b_in": 0.5 * torch.randn(hidden, generator=generator, dtype=torch.float64),
        "w_out": 0.8 * torch.randn(features, hidden, generator=generator, dtype=torch.float64),
        "b_out": 0.5 * torch.randn(features, generator=generator, dtype=torch.float64),
    }


def _field(weights: dict[str, Tensor]) -> Callable[[Tensor, float], Tensor]:
    r""":math:`v(z, t) = W_\text{out} \tanh(W_\text{in} [z, t] + b_\text{in}) + b_\text{out}`."""
    w_in, b_in = weights["w_in"].clone(), weights["b_in"].clone()
    w_out, b_out = weights["w_out"].clone(), weights["b_out"].clone()

    def velocity(z: Tensor, t: float) -> Tensor:
        time = torch.full((z.shape[0], 1), float(t), dtype=z.dtype, device=z.device)
        hidden = torch.tanh(torch.cat([z, time], dim=1) @ w_in.T + b_in)
        return hidden @ w_out.T + b_out

    return velocity


def _step_inputs(generator: torch.Generator) -> dict[str, Any]:
    features, batch = _randint(generator, 2, 4), _randint(generator, 4, 7)
    cases = []
    for index in range(_STEP_CASES):
        size = float(_uniform(generator, 0.1, 0.4))
        cases.append(
            {
                "z": torch.randn(batch, features, generator=generator, dtype=torch.float64),
                "log_abs_det": torch.randn(batch, generator=generator, dtype=torch.float64),
                "t": float(_uniform(generator, 0.1, 0.9)),
                "dt": size if index == 0 else -size,
            }
        )
    return {"field": _draw_field(generator, features), "cases": cases}


def _respond_step(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    velocity = _field(inputs["field"])
    for index, case in enumerate(inputs["cases"]):

        def run(part: int, case: dict[str, Any] = case) -> Any:
            result = answer(
                velocity, case["z"].clone(), case["log_abs_det"].clone(), case["t"], case["dt"]
            )
            if not isinstance(result, tuple | list) or len(result) != 2:
                raise TypeError(
                    f"expected a pair (z_next, log_abs_det_next), got {type(result).__name__}"
                )
            return result[part].detach() if isinstance(result[part], Tensor) else result[part]

        attempt(outputs, f"z_next_{index}", lambda run=run: run(0))
        attempt(outputs, f"log_abs_det_next_{index}", lambda run=run: run(1))
    return outputs


def _reference_step(weights: dict[str, Tensor], case: dict[str, Any]) -> tuple[Tensor, Tensor]:
    velocity = _field(weights)
    z, t, dt = case["z"], case["t"], case["dt"]
    traces = torch.stack(
        [
            torch.autograd.functional.jacobian(lambda p: velocity(p[None], t)[0], sample).trace()
            for sample in z
        ]
    )
    return z + dt * velocity(z, t), case["log_abs_det"] + dt * traces


def _judge_step(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    results = []
    for index, case in enumerate(inputs["cases"]):
        z_next, log_abs_det_next = _reference_step(inputs["field"], case)
        when = f"t = {case['t']:.3f}, dt = {case['dt']:+.3f}"
        results.append(
            compare(
                f"z after the step ({when})",
                outputs,
                f"z_next_{index}",
                z_next,
                0.5,
                "z + dt v(z, t)",
                1e-9,
                1e-9,
            )
        )
        results.append(
            compare(
                f"log_abs_det after the step ({when})",
                outputs,
                f"log_abs_det_next_{index}",
                log_abs_det_next,
                1.0,
                "log_abs_det + dt div v(z, t)",
                1e-8,
                1e-8,
            )
        )
    return results


LOG_DENSITY_STEP = Question(
    id="flow_matching.log_density_step",
    exercise="fm-ex-step",
    title="One step of the log-density ODE",
    answer_name="euler_log_density_step",
    kind="function",
    contract=(
        "euler_log_density_step(velocity, z, log_abs_det, t, dt) -> (z_next, "
        "log_abs_det_next). velocity(z, t): a function of a float64 tensor (batch, D) and a "
        "float time, returning (batch, D); z: (batch, D); log_abs_det: (batch,), the "
        "log|det dz/dx| accumulated so far; t, dt: floats (dt may be negative). One explicit "
        "Euler step of dz/dt = v(z, t), d(log_abs_det)/dt = tr(dv/dz)(z, t), with the exact "
        "trace at (z, t). Returns float64 tensors (batch, D) and (batch,)."
    ),
    points=3.0,
    make_inputs=_step_inputs,
    respond=_respond_step,
    judge=_judge_step,
    protected=(
        "flowcourse.continuous.trace:exact_divergence",
        "flowcourse.continuous.ode:euler_step",
    ),
    open_book=(
        "flowcourse.continuous.exact_divergence and euler_step compute the two halves; "
        "they are blocked while the question is graded."
    ),
)

QUESTIONS = [CONDITIONAL_PATH, GAUSSIAN_VELOCITY, LOG_DENSITY_STEP]

#: Proof-only exercises carry no points.
SELF_ASSESSED: dict[str, str] = {}
