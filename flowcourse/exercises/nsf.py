r"""Graded questions of the chapter *Neural spline flows*.

- ``nsf.rq_bin`` (exercise ``nsf-ex-bin``): the value and the log-derivative of one bin
  of a monotone rational-quadratic spline (Durkan et al. 2019), with
  :math:`\theta = (x - x_k)/w`, :math:`s = h/w`,

  .. math::

      y = y_k + \frac{h[s\theta^2 + \delta_k\theta(1-\theta)]}
                     {s + (\delta_{k+1} + \delta_k - 2s)\theta(1-\theta)}, \qquad
      \log\frac{dy}{dx} = \log\frac{s^2[\delta_{k+1}\theta^2 + 2s\theta(1-\theta)
                          + \delta_k(1-\theta)^2]}
                         {[s + (\delta_{k+1} + \delta_k - 2s)\theta(1-\theta)]^2},

  at grader-drawn bins and points.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from flowcourse.exercises.question import Question, Result, attempt, compare, diagnostic, plain
from flowcourse.splines import rational_quadratic_bin

__all__ = ["QUESTIONS", "SELF_ASSESSED"]

# --- nsf.rq_bin ---------------------------------------------------------------------

#: The answer's arguments, in order: the point, then the bin's knots and derivatives.
_ARGUMENTS = ("x", "x_left", "x_right", "y_left", "y_right", "derivative_left", "derivative_right")
_POINTS = 12


def _bin_inputs(generator: torch.Generator) -> dict[str, Any]:
    def uniform(low: float, high: float) -> Tensor:
        return low + (high - low) * torch.rand(_POINTS, generator=generator, dtype=torch.float64)

    x_left, y_left = uniform(-3.0, 1.0), uniform(-3.0, 1.0)
    width, height = uniform(0.2, 2.0), uniform(0.2, 2.0)
    # Derivatives far from the slope h/w on both sides, so that a linear piece, swapped
    # derivatives or a missing square cannot agree by chance.
    slope = height / width
    derivative_left = slope * torch.exp(uniform(0.7, 2.0) * torch.where(uniform(0, 1) < 0.5, -1, 1))
    derivative_right = slope * torch.exp(
        uniform(0.7, 2.0) * torch.where(uniform(0, 1) < 0.5, 1, -1)
    )
    theta = uniform(0.05, 0.95)
    theta[0], theta[1] = 0.0, 1.0  # the two knots themselves
    return {
        "x": x_left + theta * width,
        "x_left": x_left,
        "x_right": x_left + width,
        "y_left": y_left,
        "y_right": y_left + height,
        "derivative_left": derivative_left,
        "derivative_right": derivative_right,
    }


def _respond_bin(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    x = inputs["x"].clone().requires_grad_(True)
    others = [inputs[name].clone() for name in _ARGUMENTS[1:]]
    pair = attempt(outputs, "pair", lambda: answer(x, *others))
    outputs.pop("pair", None)
    if "pair:error" in outputs:
        outputs["y:error"] = outputs["log_derivative:error"] = outputs.pop("pair:error")
        return outputs
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        message = f"returned {type(pair).__name__}, expected a pair (y, log_derivative)"
        outputs["y:error"] = outputs["log_derivative:error"] = message
        return outputs
    y, log_derivative = pair
    outputs["y"], outputs["log_derivative"] = plain(y), plain(log_derivative)
    # Diagnostic: the slope of the answer's own y, by autograd.
    if isinstance(y, Tensor) and y.requires_grad and y.shape == x.shape:
        attempt(
            outputs,
            "autograd_log_derivative",
            lambda: torch.autograd.grad(y.sum(), x)[0].log(),
        )
    return outputs


def _judge_bin(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    with torch.no_grad():
        y, log_derivative = rational_quadratic_bin(*(inputs[name] for name in _ARGUMENTS))
    where = f"at {_POINTS} points of random bins (the first two on the left and right knots)"
    results = [
        compare("y", outputs, "y", y, 1.0, f"y {where}", 1e-9, 1e-9),
        compare(
            "log dy/dx", outputs, "log_derivative", log_derivative, 1.0,
            f"log dy/dx {where}", 1e-9, 1e-9,
        ),
    ]  # fmt: skip
    own = outputs.get("autograd_log_derivative")
    answer = outputs.get("log_derivative")
    if isinstance(own, Tensor) and isinstance(answer, Tensor) and own.shape == answer.shape:
        error = float((own.to(torch.float64) - answer.to(torch.float64)).abs().max())
        agrees = error < 1e-8
        message = (
            f"your log_derivative is the log of the slope of your own y (autograd), to {error:.1e}"
            if agrees
            else f"your log_derivative differs from the log of the slope of your own y "
            f"(autograd) by up to {error:.3g}"
        )
        results.append(diagnostic("consistent with your y", agrees, message))
    return results


RQ_BIN = Question(
    id="nsf.rq_bin",
    exercise="nsf-ex-bin",
    title="One bin of a rational-quadratic spline",
    answer_name="rq_bin",
    kind="function",
    contract=(
        "rq_bin(x, x_left, x_right, y_left, y_right, derivative_left, derivative_right) -> "
        "(y, log_derivative): every argument a float64 tensor of shape (N,), x in "
        "[x_left, x_right]; y is the rational-quadratic spline of the bin through "
        "(x_left, y_left) and (x_right, y_right) with these derivatives at its ends, "
        "log_derivative = log dy/dx, both of shape (N,)."
    ),
    points=2.0,
    make_inputs=_bin_inputs,
    respond=_respond_bin,
    judge=_judge_bin,
    protected=("flowcourse.splines.rational_quadratic:rational_quadratic_bin",),
    open_book="flowcourse.splines.rational_quadratic_bin is the reference function.",
)

QUESTIONS = [RQ_BIN]

#: Proof-only exercises carry no points.
SELF_ASSESSED: dict[str, str] = {
    "nsf-ex-inverse": "a derivation (the quadratic of the inverse), compared with the solution",
}
