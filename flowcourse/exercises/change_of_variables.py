r"""Graded questions of the chapter *The change of variables*.

- ``change_of_variables.affine_gaussian`` (exercise ``cov-ex-affine``): the log-density
  of :math:`x` when :math:`z = (x - \mu)/\sigma \sim \mathcal{N}(0, 1)`.
- ``change_of_variables.elementwise_affine`` (exercise ``cov-ex-elementwise``): the layer
  :math:`z = e^{s} \odot x + t` with its inverse and log-determinants.
- ``change_of_variables.noise_side_log_prob`` (exercise ``cov-ex-sampling-side``): the
  samples :math:`x = f^{-1}(z)` and their log-density, from the noise side.
- ``change_of_variables.linear_flow_nll`` (exercise ``cov-ex-linear-limits``): the
  expected test NLL of the best linear flow on ``EightGaussians(radius, std)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from flowcourse.exercises.generative_models import build_flow, draw_flow
from flowcourse.exercises.question import Question, Result, attempt, compare, diagnostic
from flowcourse.exercises.transforms import judge_transform, respond_layer

__all__ = ["QUESTIONS", "SELF_ASSESSED"]


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return float(low + (high - low) * torch.rand(1, generator=generator, dtype=torch.float64))


# --- cov-ex-affine ------------------------------------------------------------------


def _affine_inputs(generator: torch.Generator) -> dict[str, Any]:
    cases = []
    for sigma_range in ((0.2, 0.7), (1.5, 3.0)):
        batch = int(torch.randint(5, 10, (1,), generator=generator))
        mu = 2 * float(torch.randn(1, generator=generator, dtype=torch.float64))
        sigma = _uniform(generator, *sigma_range)
        x = mu + 2 * sigma * torch.randn(batch, generator=generator, dtype=torch.float64)
        cases.append({"x": x, "mu": mu, "sigma": sigma})
    return {"cases": cases}


def _respond_affine(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for index, case in enumerate(inputs["cases"]):
        attempt(
            outputs,
            f"log_prob_{index}",
            lambda case=case: answer(case["x"].clone(), case["mu"], case["sigma"]),
        )
    return outputs


def _judge_affine(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    results = []
    for index, case in enumerate(inputs["cases"]):
        x, mu, sigma = case["x"], case["mu"], case["sigma"]
        standard = (x - mu) / sigma
        expected = -0.5 * standard**2 - 0.5 * math.log(2 * math.pi) - math.log(sigma)
        what = f"log p_X(x) for mu = {mu:.4g}, sigma = {sigma:.4g}"
        results.append(
            compare(
                f"log-density, sigma = {sigma:.3g}",
                outputs,
                f"log_prob_{index}",
                expected,
                0.5,
                what,
            )
        )
    return results


AFFINE_GAUSSIAN = Question(
    id="change_of_variables.affine_gaussian",
    exercise="cov-ex-affine",
    title="An affine map of a Gaussian",
    answer_name="affine_gaussian_log_prob",
    kind="function",
    contract=(
        "affine_gaussian_log_prob(x: Tensor, mu: float, sigma: float) -> Tensor: log p_X(x) "
        "in nats, elementwise, for x of shape (N,), float64, when z = (x - mu) / sigma is "
        "N(0, 1) and sigma > 0; returns shape (N,), float64."
    ),
    points=1.0,
    make_inputs=_affine_inputs,
    respond=_respond_affine,
    judge=_judge_affine,
)


# --- cov-ex-elementwise -------------------------------------------------------------


def _elementwise_inputs(generator: torch.Generator) -> dict[str, Any]:
    features = int(torch.randint(2, 7, (1,), generator=generator))
    batch = int(torch.randint(5, 9, (1,), generator=generator))
    return {
        "features": features,
        "log_scale": 0.8 * torch.randn(features, generator=generator, dtype=torch.float64),
        "shift": torch.randn(features, generator=generator, dtype=torch.float64),
        "x": torch.randn(batch, features, generator=generator, dtype=torch.float64),
        "z": torch.randn(batch, features, generator=generator, dtype=torch.float64),
    }


def _respond_elementwise(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    def build() -> Any:
        layer = answer(inputs["features"]).double()
        with torch.no_grad():
            layer.log_scale.copy_(inputs["log_scale"])
            layer.shift.copy_(inputs["shift"])
        return layer

    return respond_layer(build, inputs["x"], inputs["z"])


def _judge_elementwise(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    log_scale, shift = inputs["log_scale"], inputs["shift"]

    def reference(direction: str, tensor: Tensor) -> tuple[Tensor, Tensor]:
        total = log_scale.sum().expand(tensor.shape[0])
        if direction == "forward":
            return tensor * log_scale.exp() + shift, total
        return (tensor - shift) * (-log_scale).exp(), -total

    points = {
        "forward_value": 1.0,
        "forward_log_det": 0.5,
        "inverse_value": 1.0,
        "inverse_log_det": 0.5,
    }
    return judge_transform(
        inputs,
        outputs,
        reference,
        points,
        built_by="ElementwiseAffine(features), then setting its parameters log_scale and shift,",
    )


ELEMENTWISE_AFFINE = Question(
    id="change_of_variables.elementwise_affine",
    exercise="cov-ex-elementwise",
    title="Write an elementwise affine layer",
    answer_name="ElementwiseAffine",
    kind="class",
    contract=(
        "ElementwiseAffine(features: int) -> Transform with nn.Parameters log_scale (s) and "
        "shift (t), both of shape (features,); the grader converts it with .double() and sets "
        "them to random values. forward(x) -> (z, log_abs_det) with z = exp(s) * x + t; "
        "inverse(z) -> (x, log_abs_det); x, z of shape (batch, features), log_abs_det of "
        "shape (batch,), float64."
    ),
    points=3.0,
    make_inputs=_elementwise_inputs,
    respond=_respond_elementwise,
    judge=_judge_elementwise,
)


# --- cov-ex-sampling-side -----------------------------------------------------------


def _noise_side_inputs(generator: torch.Generator) -> dict[str, Any]:
    drawn = draw_flow(generator)
    batch = int(torch.randint(5, 9, (1,), generator=generator))
    z = torch.randn(batch, drawn["kwargs"]["features"], generator=generator, dtype=torch.float64)
    return {"flow": drawn, "z": z}


def _forward_pass_forbidden(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError(
        "noise_side_log_prob must not run the forward pass (flow(x), flow.log_prob(x), "
        "flow.transform(x)): use flow.transform.inverse(z) and flow.base.log_prob(z)"
    )


def _respond_noise_side(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    flow = build_flow(inputs["flow"])
    # The exercise asks for the noise side: the forward pass of the whole flow raises.
    for module in (flow, flow.transform):
        module.forward = _forward_pass_forbidden
    flow.log_prob = _forward_pass_forbidden
    outputs: dict[str, Any] = {}
    pair = attempt(outputs, "pair", lambda: answer(flow, inputs["z"].clone()))
    outputs.pop("pair", None)
    if pair is None:
        return outputs
    if isinstance(pair, tuple | list) and len(pair) == 2:
        attempt(outputs, "x", lambda: pair[0])
        attempt(outputs, "log_prob", lambda: pair[1])
    else:
        message = f"returned {type(pair).__name__}, expected a pair (x, log_prob)"
        outputs["x:error"] = outputs["log_prob:error"] = message
    return outputs


def _judge_noise_side(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    if "pair:error" in outputs:
        message = f"noise_side_log_prob(flow, z) raised {outputs['pair:error']}"
        return [Result("runs", False, 0.0, 2.0, message)]
    flow = build_flow(inputs["flow"])
    z = inputs["z"]
    with torch.no_grad():
        x, log_abs_det = flow.transform.inverse(z)
        log_prob = flow.base.log_prob(z) - log_abs_det
    results = [compare("x = f^-1(z)", outputs, "x", x, 1.0, "x")]
    result = compare("log p(x) from the noise side", outputs, "log_prob", log_prob, 1.0, "log_prob")
    if result.passed and not results[0].passed:
        message = f"{result.message}, but it earns points only with a correct x"
        result = Result(result.name, False, 0.0, 1.0, message)
    results.append(result)
    own_x = outputs.get("x")
    if isinstance(own_x, Tensor) and own_x.shape == x.shape and "log_prob" in outputs:
        with torch.no_grad():
            forward = flow.log_prob(own_x.to(torch.float64))
        agree = compare("", outputs, "log_prob", forward, 0.0, "")
        message = (
            "log_prob equals flow.log_prob(x) of your x"
            if agree.passed
            else f"log_prob vs flow.log_prob(x) of your x: {agree.message}"
        )
        results.append(diagnostic("agrees with the forward pass", agree.passed, message))
    return results


NOISE_SIDE_LOG_PROB = Question(
    id="change_of_variables.noise_side_log_prob",
    exercise="cov-ex-sampling-side",
    title="The density of a sample, from the noise side",
    answer_name="noise_side_log_prob",
    kind="function",
    contract=(
        "noise_side_log_prob(flow, z) -> (x, log_prob): flow is a flowcourse Flow "
        "(flow.transform.inverse(z) returns (x, log|det dx/dz|), flow.base.log_prob(z) the "
        "base log-density); z of shape (N, D), float64. Return x = f^-1(z) of shape (N, D) "
        "and log p(x) in nats of shape (N,), without running the forward pass."
    ),
    points=2.0,
    make_inputs=_noise_side_inputs,
    respond=_respond_noise_side,
    judge=_judge_noise_side,
    protected=("flowcourse.core:Flow.sample_and_log_prob",),
    open_book="flowcourse.core.Flow.sample_and_log_prob computes the same formula.",
)


# --- cov-ex-linear-limits -----------------------------------------------------------


def _linear_inputs(generator: torch.Generator) -> dict[str, Any]:
    cases = [[_uniform(generator, 0.5, 4.0), _uniform(generator, 0.05, 1.0)] for _ in range(5)]
    return {"cases": cases}


def _respond_linear(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    attempt(outputs, "nll", lambda: [float(answer(r, s)) for r, s in inputs["cases"]])
    return outputs


def _judge_linear(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    cases = inputs["cases"]
    # The mixture has mean 0 and covariance (r^2 / 2 + std^2) I; the best Gaussian's
    # expected NLL is its entropy, 0.5 log det(2 pi e Cov) = log(2 pi e (r^2/2 + std^2)).
    expected = torch.tensor(
        [math.log(2 * math.pi * math.e * (r**2 / 2 + s**2)) for r, s in cases], dtype=torch.float64
    )
    what = "the expected test NLLs (nats) for the (radius, std) cases " + ", ".join(
        f"({r:.3f}, {s:.3f})" for r, s in cases
    )
    return [
        compare("expected test NLL of the best linear flow", outputs, "nll", expected, 2.0, what)
    ]


LINEAR_FLOW_NLL = Question(
    id="change_of_variables.linear_flow_nll",
    exercise="cov-ex-linear-limits",
    title="What a linear flow cannot learn",
    answer_name="best_linear_flow_nll",
    kind="function",
    contract=(
        "best_linear_flow_nll(radius: float, std: float) -> float: the expected test NLL, in "
        "nats, of the best linear flow Flow(LinearMap(2), StandardNormal(2)) for data from "
        "EightGaussians(radius, std) (in the limit of infinite training data)."
    ),
    points=2.0,
    make_inputs=_linear_inputs,
    respond=_respond_linear,
    judge=_judge_linear,
)

QUESTIONS = [AFFINE_GAUSSIAN, ELEMENTWISE_AFFINE, NOISE_SIDE_LOG_PROB, LINEAR_FLOW_NLL]

#: Every exercise of this chapter has a graded part.
SELF_ASSESSED: dict[str, str] = {}
