r"""Graded questions of the chapter *RealNVP: affine coupling layers*.

- ``realnvp.affine_inverse`` (exercise ``realnvp-ex-inverse``): the inverse of the
  affine coupling :math:`z = x \odot e^{s} + (1 - m) \odot t` whose forward is given,
  :math:`x = (z - (1 - m) \odot t) \odot e^{-s}`, with
  :math:`\log|\det \partial x/\partial z| = -\sum_i s_i`.
- ``realnvp.bits_per_dim`` (exercise ``realnvp-ex-bits`` (3)): bits per dimension of
  discrete data from :math:`\log p_Y(y)`, :math:`(D\log L - \log p_Y(y)) / (D \ln 2)`.
- ``realnvp.bits_from_logit`` (exercise ``realnvp-ex-bits`` (1)): the same from a flow
  in logit space, :math:`\log p_Y(y) = \log p_S(s) + \log|\det \partial s/\partial y|`.
- ``realnvp.clamp_loss`` (exercise ``realnvp-ex-clamp``): the loss, in nats, of a
  RealNVP fitted to data on a line once its free log-scales have saturated at the clamp.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from flowcourse.coupling import AffineCoupling
from flowcourse.exercises.question import Question, Result, attempt, compare
from flowcourse.exercises.transforms import (
    build_mlp,
    draw_mlp,
    judge_transform,
    respond_transform,
)

__all__ = ["QUESTIONS", "SELF_ASSESSED"]


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return float(low + (high - low) * torch.rand(1, generator=generator, dtype=torch.float64))


# --- realnvp-ex-inverse -------------------------------------------------------------


def _random_mask(generator: torch.Generator, features: int) -> Tensor:
    """A random bool mask with at least one kept and one transformed coordinate."""
    while True:
        mask = torch.rand(features, generator=generator) < 0.5
        if 0 < int(mask.sum()) < features:
            return mask


def _inverse_inputs(generator: torch.Generator) -> dict[str, Any]:
    features = int(torch.randint(3, 8, (1,), generator=generator))
    batch = int(torch.randint(5, 9, (1,), generator=generator))
    return {
        "mask": _random_mask(generator, features),
        "conditioner": draw_mlp(generator, features, 2 * features),
        "log_scale_bound": _uniform(generator, 1.0, 3.0),
        "x": torch.randn(batch, features, generator=generator, dtype=torch.float64),
        "z": torch.randn(batch, features, generator=generator, dtype=torch.float64),
    }


def _respond_inverse(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    conditioner = build_mlp(inputs["conditioner"]["spec"], inputs["conditioner"]["state"])
    outputs: dict[str, Any] = {}
    layer = attempt(
        outputs,
        "layer",
        lambda: answer(inputs["mask"].clone(), conditioner, inputs["log_scale_bound"]),
    )
    outputs.pop("layer", None)
    if layer is None:
        return outputs
    outputs |= respond_transform(layer, inputs["x"], inputs["z"], directions=("inverse",))
    # The forward is given: the round trip explains a wrong inverse (no points).
    attempt(outputs, "round_trip", lambda: layer.inverse(layer.forward(inputs["x"])[0])[0])
    return outputs


def _judge_inverse(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    conditioner = build_mlp(inputs["conditioner"]["spec"], inputs["conditioner"]["state"])
    reference = AffineCoupling(inputs["mask"], conditioner, inputs["log_scale_bound"])

    points = {"inverse_value": 2.0, "inverse_log_det": 1.0}
    return judge_transform(
        inputs,
        outputs,
        reference,
        points,
        built_by="MyAffineCoupling(mask, conditioner, log_scale_bound)",
    )


AFFINE_INVERSE = Question(
    id="realnvp.affine_inverse",
    exercise="realnvp-ex-inverse",
    title="Invert an affine coupling",
    answer_name="MyAffineCoupling",
    kind="class",
    contract=(
        "MyAffineCoupling(mask, conditioner, log_scale_bound=3.0) -> Transform, with the "
        "forward of the exercise. mask: bool tensor (D,), True = kept; conditioner: "
        "nn.Module mapping (batch, D) to (batch, 2D) = (shift, raw log-scale). "
        "inverse(z) -> (x, log_abs_det) with x of shape (batch, D) and "
        "log_abs_det = log|det dx/dz| of shape (batch,), float64."
    ),
    points=3.0,
    make_inputs=_inverse_inputs,
    respond=_respond_inverse,
    judge=_judge_inverse,
    protected=("flowcourse.coupling.affine:AffineCoupling",),
    open_book="flowcourse.coupling.AffineCoupling.inverse is the reference inverse.",
)


# --- realnvp-ex-bits ----------------------------------------------------------------


def _draw_image_case(generator: torch.Generator) -> dict[str, Any]:
    num_dims = int(torch.randint(2, 3073, (1,), generator=generator))
    num_levels = int(torch.randint(2, 257, (1,), generator=generator))
    batch = int(torch.randint(3, 7, (1,), generator=generator))
    return {"num_dims": num_dims, "num_levels": num_levels, "batch": batch}


def _bits_inputs(generator: torch.Generator) -> dict[str, Any]:
    cases = []
    for _ in range(2):
        case = _draw_image_case(generator)
        scale = case["num_dims"]
        noise = torch.randn(case["batch"], generator=generator, dtype=torch.float64)
        case["log_prob_y"] = scale * (0.5 + noise)
        cases.append(case)
    return {"cases": cases}


def _respond_bits(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for index, case in enumerate(inputs["cases"]):
        attempt(
            outputs,
            f"bits_{index}",
            lambda case=case: answer(
                case["log_prob_y"].clone(), case["num_dims"], case["num_levels"]
            ),
        )
    return outputs


def _bits_formula(log_prob_y: Tensor, num_dims: int, num_levels: int) -> Tensor:
    return (num_dims * math.log(num_levels) - log_prob_y) / (num_dims * math.log(2))


def _judge_bits_cases(
    inputs: dict[str, Any],
    outputs: dict[str, Any],
    log_prob_y: Callable[[dict[str, Any]], Tensor],
    space: str,
) -> list[Result]:
    """2 points shared by the cases: bits/dim of ``log_prob_y(case)`` nats per image."""
    results = []
    cases = inputs["cases"]
    for index, case in enumerate(cases):
        d, levels = case["num_dims"], case["num_levels"]
        expected = _bits_formula(log_prob_y(case), d, levels)
        what = f"bits/dim{space} for num_dims = {d}, num_levels = {levels}"
        worth = 2.0 / len(cases)
        results.append(
            compare(f"bits/dim, D = {d}", outputs, f"bits_{index}", expected, worth, what)
        )
    return results


def _judge_bits(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    return _judge_bits_cases(inputs, outputs, lambda case: case["log_prob_y"], "")


BITS_PER_DIM = Question(
    id="realnvp.bits_per_dim",
    exercise="realnvp-ex-bits",
    title="Bits per dimension by hand",
    answer_name="my_bits_per_dim",
    kind="function",
    contract=(
        "my_bits_per_dim(log_prob_y: Tensor, num_dims: int, num_levels: int) -> Tensor: "
        "log_prob_y holds log p_Y(y) in nats of dequantised images y = (k + u) / L in "
        "[0, 1]^D, shape (N,), float64; return the bits per dimension of the discrete "
        "images, shape (N,), float64."
    ),
    points=2.0,
    make_inputs=_bits_inputs,
    respond=_respond_bits,
    judge=_judge_bits,
    protected=(
        "flowcourse.preprocessing:bits_per_dim",
        "flowcourse.preprocessing:bits_per_dim_from_logit",
    ),
    open_book="flowcourse.preprocessing.bits_per_dim is the reference.",
)


def _logit_inputs(generator: torch.Generator) -> dict[str, Any]:
    cases = []
    for _ in range(2):
        case = _draw_image_case(generator)
        d, batch = case["num_dims"], case["batch"]
        case["log_prob_s"] = -d * (
            1.0 + torch.rand(batch, generator=generator, dtype=torch.float64)
        )
        case["log_det"] = d * (
            0.5 + 2 * torch.rand(batch, generator=generator, dtype=torch.float64)
        )
        cases.append(case)
    return {"cases": cases}


def _respond_logit(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for index, case in enumerate(inputs["cases"]):
        attempt(
            outputs,
            f"bits_{index}",
            lambda case=case: answer(
                case["log_prob_s"].clone(),
                case["log_det"].clone(),
                case["num_dims"],
                case["num_levels"],
            ),
        )
    return outputs


def _judge_logit(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    def log_prob_y(case: dict[str, Any]) -> Tensor:  # log p_Y = log p_S + log|det ds/dy|
        return case["log_prob_s"] + case["log_det"]

    return _judge_bits_cases(inputs, outputs, log_prob_y, " from logit space")


BITS_FROM_LOGIT = Question(
    id="realnvp.bits_from_logit",
    exercise="realnvp-ex-bits",
    title="Bits per dimension of a flow in logit space",
    answer_name="my_bits_per_dim_from_logit",
    kind="function",
    contract=(
        "my_bits_per_dim_from_logit(log_prob_s: Tensor, logit_log_abs_det: Tensor, "
        "num_dims: int, num_levels: int) -> Tensor: log_prob_s = log p_S(s) (nats) of the "
        "flow in logit space and logit_log_abs_det = log|det ds/dy| (nats), both of shape "
        "(N,), float64; return the bits per dimension of the discrete images, shape (N,)."
    ),
    points=2.0,
    make_inputs=_logit_inputs,
    respond=_respond_logit,
    judge=_judge_logit,
    protected=(
        "flowcourse.preprocessing:bits_per_dim",
        "flowcourse.preprocessing:bits_per_dim_from_logit",
    ),
    open_book="flowcourse.preprocessing.bits_per_dim_from_logit is the reference.",
)


# --- realnvp-ex-clamp ---------------------------------------------------------------


def _clamp_inputs(generator: torch.Generator) -> dict[str, Any]:
    # At least one odd and one even number of layers, so that counting every layer, or
    # half of them rounded down, is told apart from the couplings that see x_2.
    layers = [
        2 * int(torch.randint(1, 4, (1,), generator=generator)) + 1,
        2 * int(torch.randint(1, 5, (1,), generator=generator)),
    ]
    layers += torch.randint(2, 9, (3,), generator=generator).tolist()
    order = torch.randperm(len(layers), generator=generator).tolist()
    cases = []
    for index in order:
        bound = _uniform(generator, 1.5, 5.0)
        std = _uniform(generator, 0.3, 3.0)
        cases.append([bound, int(layers[index]), std])
    return {"cases": cases}


def _respond_clamp(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    attempt(outputs, "loss", lambda: [float(answer(b, n, s)) for b, n, s in inputs["cases"]])
    return outputs


def _clamp_loss(bound: float, num_layers: int, data_std: float) -> float:
    entropy_x1 = 0.5 * math.log(2 * math.pi * math.e * data_std**2)
    gaussian_at_zero = 0.5 * math.log(2 * math.pi)
    saturated = math.ceil(num_layers / 2)  # the couplings 0, 2, 4, ... transform x_2
    return entropy_x1 + gaussian_at_zero - saturated * bound


def _judge_clamp(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    cases = inputs["cases"]
    expected = torch.tensor([_clamp_loss(*case) for case in cases], dtype=torch.float64)
    what = "the losses (nats) for the (log_scale_bound, num_layers, data_std) cases " + ", ".join(
        f"({b:.3f}, {n}, {s:.3f})" for b, n, s in cases
    )
    return [compare("loss at saturation", outputs, "loss", expected, 2.0, what)]


CLAMP_LOSS = Question(
    id="realnvp.clamp_loss",
    exercise="realnvp-ex-clamp",
    title="The loss on data on a line, with a clamp",
    answer_name="predicted_line_loss",
    kind="function",
    contract=(
        "predicted_line_loss(log_scale_bound: float, num_layers: int, data_std: float) -> "
        "float: the average NLL in nats of models.realnvp(features=2, num_layers=num_layers, "
        "log_scale_bound=log_scale_bound) on data x_1 ~ N(0, data_std^2), x_2 = 0, once every "
        "coupling that transforms x_2 has its log-scale saturated at +log_scale_bound and "
        "maps x_2 to 0, and "
        "x_1 is mapped to N(0, 1) as well as possible; num_layers >= 2."
    ),
    points=2.0,
    make_inputs=_clamp_inputs,
    respond=_respond_clamp,
    judge=_judge_clamp,
)

QUESTIONS = [AFFINE_INVERSE, BITS_PER_DIM, BITS_FROM_LOGIT, CLAMP_LOSS]

#: Every exercise of this chapter has a graded part.
SELF_ASSESSED: dict[str, str] = {}
