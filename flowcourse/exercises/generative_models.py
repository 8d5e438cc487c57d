r"""Graded questions of the chapter *Generative models: sampling and density evaluation*.

- ``generative_models.bits_per_dim`` (exercise ``gm-ex-bits``): an NLL in nats as bits
  per dimension, :math:`\text{NLL} / (D \ln 2)`.
- ``generative_models.ml_gaussian_nll`` (exercise ``gm-ex-gaussian`` (b)): the average
  NLL of the maximum-likelihood Gaussian, :math:`\tfrac12\log\det(2\pi e\,\hat\Sigma)`.
- ``generative_models.elbo_gap`` (exercise ``gm-ex-elbo`` (b)): the gap
  :math:`\log p(x) - \text{ELBO}` of a 1-D linear-Gaussian model, in closed form.
- ``generative_models.tempered_log_prob`` (exercise ``gm-ex-temperature`` (b)): the
  log-density of a flow's samples drawn at temperature :math:`T`.

The helpers :func:`draw_flow` and :func:`build_flow` (a small random flow that travels
as plain data) are also used by :mod:`flowcourse.exercises.change_of_variables`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from flowcourse import models
from flowcourse.core import Flow
from flowcourse.exercises.question import Question, Result, attempt, compare, diagnostic

__all__ = ["QUESTIONS", "SELF_ASSESSED"]

_FACTORIES = ("realnvp", "maf")


def _uniform(generator: torch.Generator, low: float, high: float, size: int = 1) -> list[float]:
    values = low + (high - low) * torch.rand(size, generator=generator, dtype=torch.float64)
    return [float(value) for value in values]


def _integer(generator: torch.Generator, low: int, high: int) -> int:
    """A random integer in ``[low, high]``."""
    return int(torch.randint(low, high + 1, (1,), generator=generator))


# --- a small random flow, as plain data (shared with change_of_variables) ----------


def draw_flow(generator: torch.Generator, scale: float = 0.3) -> dict[str, Any]:
    """The factory, arguments and random float64 parameters of a small flow of
    :mod:`flowcourse.models` (RealNVP or MAF, 2 to 4 features); never the identity."""
    factory = _FACTORIES[_integer(generator, 0, len(_FACTORIES) - 1)]
    kwargs = {
        "features": _integer(generator, 2, 4),
        "num_layers": _integer(generator, 2, 4),
        "hidden_features": _integer(generator, 8, 16),
    }
    flow = getattr(models, factory)(**kwargs).double()
    parameters = {
        name: scale * torch.randn(value.shape, generator=generator, dtype=torch.float64)
        for name, value in flow.named_parameters()
    }
    return {"factory": factory, "kwargs": kwargs, "parameters": parameters}


def build_flow(drawn: dict[str, Any]) -> Flow:
    """The float64 flow of :func:`draw_flow`'s data."""
    if drawn["factory"] not in _FACTORIES:
        raise ValueError(f"unknown factory {drawn['factory']!r}")
    flow = getattr(models, drawn["factory"])(**drawn["kwargs"]).double()
    state = flow.state_dict()
    state.update(drawn["parameters"])
    flow.load_state_dict(state)
    return flow.eval()


def _cases_text(cases: list[list[float]], names: str) -> str:
    shown = ", ".join("(" + ", ".join(f"{value:.4g}" for value in case) + ")" for case in cases)
    return f"the values for the ({names}) cases {shown}"


# --- gm-ex-bits ---------------------------------------------------------------------


def _bits_inputs(generator: torch.Generator) -> dict[str, Any]:
    dims = torch.randint(2, 4097, (6,), generator=generator).tolist()
    per_dim = _uniform(generator, -1.0, 6.0, 6)
    return {"cases": [[d * p, int(d)] for d, p in zip(dims, per_dim, strict=True)]}


def _respond_bits(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    attempt(outputs, "bits", lambda: [float(answer(n, d)) for n, d in inputs["cases"]])
    return outputs


def _judge_bits(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    expected = torch.tensor(
        [n / (d * math.log(2)) for n, d in inputs["cases"]], dtype=torch.float64
    )
    what = _cases_text(inputs["cases"], "nll_nats, num_dims")
    return [compare("bits per dimension", outputs, "bits", expected, 1.0, what)]


BITS_PER_DIM = Question(
    id="generative_models.bits_per_dim",
    exercise="gm-ex-bits",
    title="From nats to bits per dimension",
    answer_name="nats_to_bits_per_dim",
    kind="function",
    contract=(
        "nats_to_bits_per_dim(nll_nats: float, num_dims: int) -> float: the negative "
        "log-likelihood nll_nats (nats, for one D-dimensional point) in bits per dimension."
    ),
    points=1.0,
    make_inputs=_bits_inputs,
    respond=_respond_bits,
    judge=_judge_bits,
)


# --- gm-ex-gaussian -----------------------------------------------------------------


def _gaussian_inputs(generator: torch.Generator) -> dict[str, Any]:
    datasets = []
    for _ in range(3):
        n = _integer(generator, 12, 40)
        d = _integer(generator, 1, 4)
        mixing = torch.randn(d, d, generator=generator, dtype=torch.float64)
        mean = 3 * torch.randn(d, generator=generator, dtype=torch.float64)
        noise = torch.randn(n, d, generator=generator, dtype=torch.float64)
        datasets.append(noise @ mixing.T + mean)
    return {"datasets": datasets}


def _respond_gaussian(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    attempt(
        outputs,
        "nll",
        lambda: [float(answer(data.clone())) for data in inputs["datasets"]],
    )
    return outputs


def _ml_gaussian_nll(data: Tensor) -> float:
    covariance = torch.cov(data.T, correction=0).reshape(data.shape[1], data.shape[1])
    return 0.5 * float(torch.logdet(2 * math.pi * math.e * covariance))


def _judge_gaussian(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    datasets = inputs["datasets"]
    expected = torch.tensor([_ml_gaussian_nll(data) for data in datasets], dtype=torch.float64)
    shapes = ", ".join(str(tuple(data.shape)) for data in datasets)
    what = f"the average NLLs (nats) for data of shapes {shapes}"
    return [compare("average NLL of the ML Gaussian", outputs, "nll", expected, 2.0, what)]


ML_GAUSSIAN_NLL = Question(
    id="generative_models.ml_gaussian_nll",
    exercise="gm-ex-gaussian",
    title="The NLL of the maximum-likelihood Gaussian",
    answer_name="ml_gaussian_average_nll",
    kind="function",
    contract=(
        "ml_gaussian_average_nll(data: Tensor) -> float: for data of shape (N, D), float64, "
        "fit the maximum-likelihood Gaussian (sample mean, 1/N covariance) and return its "
        "average negative log-likelihood on the same data, in nats."
    ),
    points=2.0,
    make_inputs=_gaussian_inputs,
    respond=_respond_gaussian,
    judge=_judge_gaussian,
)


# --- gm-ex-elbo ---------------------------------------------------------------------


def _posterior(x: float, weight: float, noise_std: float) -> tuple[float, float]:
    """Mean and variance of p(z | x) for p(z) = N(0, 1), p(x | z) = N(w z, sigma^2)."""
    total = noise_std**2 + weight**2
    return weight * x / total, noise_std**2 / total


def _elbo_gap(x: float, weight: float, noise_std: float, q_mean: float, q_std: float) -> float:
    """KL(N(q_mean, q_std^2) || p(z | x)), the gap log p(x) - ELBO."""
    mean, variance = _posterior(x, weight, noise_std)
    ratio = q_std**2 / variance
    return 0.5 * (ratio + (q_mean - mean) ** 2 / variance - 1 - math.log(ratio))


def _elbo_inputs(generator: torch.Generator) -> dict[str, Any]:
    cases = []
    for index in range(6):
        x = 2 * float(torch.randn(1, generator=generator, dtype=torch.float64))
        weight = _uniform(generator, 0.3, 2.0)[0] * (1 if index % 2 else -1)
        noise_std = _uniform(generator, 0.3, 1.5)[0]
        if index == 0:  # the encoder equals the posterior: the bound is exact
            mean, variance = _posterior(x, weight, noise_std)
            q_mean, q_std = mean, math.sqrt(variance)
        else:
            q_mean = float(torch.randn(1, generator=generator, dtype=torch.float64))
            q_std = _uniform(generator, 0.2, 1.5)[0]
        cases.append([x, weight, noise_std, q_mean, q_std])
    order = torch.randperm(len(cases), generator=generator).tolist()
    return {"cases": [cases[i] for i in order]}


def _respond_elbo(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    attempt(outputs, "gaps", lambda: [float(answer(*case)) for case in inputs["cases"]])
    return outputs


def _judge_elbo(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    cases = inputs["cases"]
    expected = torch.tensor([_elbo_gap(*case) for case in cases], dtype=torch.float64)
    what = _cases_text(cases, "x, weight, noise_std, q_mean, q_std")
    results = [compare("log p(x) - ELBO in nats", outputs, "gaps", expected, 2.0, what)]
    gaps = outputs.get("gaps")
    if isinstance(gaps, list) and all(isinstance(g, float) for g in gaps):
        nonnegative = all(g >= -1e-9 for g in gaps)
        message = (
            "every gap is >= 0"
            if nonnegative
            else "a gap is negative: the ELBO is a lower bound, so log p(x) - ELBO >= 0"
        )
        results.append(diagnostic("the gap is never negative", nonnegative, message))
    return results


ELBO_GAP = Question(
    id="generative_models.elbo_gap",
    exercise="gm-ex-elbo",
    title="The gap of the ELBO, in closed form",
    answer_name="elbo_gap",
    kind="function",
    contract=(
        "elbo_gap(x, weight, noise_std, q_mean, q_std) -> float: for the model "
        "p(z) = N(0, 1), p(x | z) = N(weight * z, noise_std^2) and the encoder "
        "q(z | x) = N(q_mean, q_std^2), return log p(x) - ELBO in nats (floats in, a float out)."
    ),
    points=2.0,
    make_inputs=_elbo_inputs,
    respond=_respond_elbo,
    judge=_judge_elbo,
)


# --- gm-ex-temperature --------------------------------------------------------------


def _temperature_inputs(generator: torch.Generator) -> dict[str, Any]:
    drawn = draw_flow(generator)
    features = drawn["kwargs"]["features"]
    batch = _integer(generator, 5, 9)
    return {
        "flow": drawn,
        "x": torch.randn(batch, features, generator=generator, dtype=torch.float64),
        "temperatures": [_uniform(generator, 0.3, 0.8)[0], _uniform(generator, 1.2, 1.8)[0]],
    }


def _respond_temperature(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    flow = build_flow(inputs["flow"])
    x = inputs["x"]
    outputs: dict[str, Any] = {}
    for key, temperature in zip(("cold", "hot"), inputs["temperatures"], strict=True):
        attempt(outputs, key, lambda t=temperature: answer(flow, x.clone(), t))
    attempt(outputs, "unit", lambda: answer(flow, x.clone(), 1.0))
    return outputs


def _tempered_reference(flow: Flow, x: Tensor, temperature: float) -> Tensor:
    with torch.no_grad():
        z, log_abs_det = flow(x)
    dims = z.shape[1]
    base = -0.5 * (z**2).sum(dim=1) / temperature**2 - 0.5 * dims * math.log(2 * math.pi)
    return base - dims * math.log(temperature) + log_abs_det


def _judge_temperature(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    flow = build_flow(inputs["flow"])
    x = inputs["x"]
    results = []
    for key, temperature in zip(("cold", "hot"), inputs["temperatures"], strict=True):
        expected = _tempered_reference(flow, x, temperature)
        what = f"log p_T(x) at T = {temperature:.3f}"
        results.append(
            compare(f"log-density at T = {temperature:.3f}", outputs, key, expected, 1.0, what)
        )
    if "unit" in outputs:
        with torch.no_grad():
            plain_log_prob = flow.log_prob(x)
        unit = compare("", outputs, "unit", plain_log_prob, 0.0, "")
        message = (
            "at T = 1 it equals flow.log_prob(x)"
            if unit.passed
            else f"at T = 1 it should equal flow.log_prob(x): {unit.message}"
        )
        results.append(diagnostic("T = 1 gives the flow's density", unit.passed, message))
    return results


TEMPERED_LOG_PROB = Question(
    id="generative_models.tempered_log_prob",
    exercise="gm-ex-temperature",
    title="The density of samples drawn at a temperature",
    answer_name="tempered_log_prob",
    kind="function",
    contract=(
        "tempered_log_prob(flow, x, temperature) -> Tensor: flow is a flowcourse Flow "
        "(flow(x) returns (z, log_abs_det), data to noise), x has shape (N, D), float64, "
        "temperature > 0. Return the log-density, in nats and of shape (N,), of the samples "
        "x = f^-1(z) with z ~ N(0, temperature^2 I)."
    ),
    points=2.0,
    make_inputs=_temperature_inputs,
    respond=_respond_temperature,
    judge=_judge_temperature,
)

QUESTIONS = [BITS_PER_DIM, ML_GAUSSIAN_NLL, ELBO_GAP, TEMPERED_LOG_PROB]

#: Every exercise of this chapter has a graded part; its proofs are self-assessed.
SELF_ASSESSED: dict[str, str] = {}
