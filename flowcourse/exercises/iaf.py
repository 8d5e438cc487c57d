r"""Graded questions of the chapter *IAF: inverse autoregressive flows*.

- ``iaf.gated_step`` (exercise ``iaf-ex-gated``): the gated IAF step
  :math:`x = \sigma \odot z + (1 - \sigma) \odot m` (one MADE pass) and its
  position-by-position inverse, for a MADE with random weights and a random ordering.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from flowcourse.autoregressive import MADE, GatedInverseAutoregressive
from flowcourse.exercises.question import (
    Question,
    Result,
)
from flowcourse.exercises.transforms import judge_transform, respond_layer

__all__ = ["QUESTIONS", "SELF_ASSESSED"]


# --- iaf.gated_step ---------------------------------------------------------------------


def _gated_inputs(generator: torch.Generator) -> dict[str, Any]:
    features = int(torch.randint(3, 7, (1,), generator=generator))
    hidden = int(torch.randint(8, 17, (1,), generator=generator))
    order = torch.randperm(features, generator=generator) + 1
    spec = {"features": features, "hidden": hidden, "order": order}
    made = _build_made(spec)
    state = made.state_dict()
    for name, parameter in made.named_parameters():
        state[name] = 0.4 * torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
    inputs = {"made": {"spec": spec, "state": state}}
    batch = int(torch.randint(5, 9, (1,), generator=generator))
    inputs["z"] = torch.randn(batch, features, generator=generator, dtype=torch.float64)
    # forward is meant for the layer's own samples (it divides by gates below 1).
    noise = torch.randn(batch, features, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        inputs["x"] = _gated_reference(inputs).inverse(noise)[0]
    return inputs


def _build_made(spec: dict[str, Any], state: dict[str, Tensor] | None = None) -> MADE:
    made = MADE(
        int(spec["features"]),
        hidden_features=int(spec["hidden"]),
        output_multiplier=2,
        order=spec["order"].clone(),
        zero_init_last=False,
    ).double()
    if state is not None:
        made.load_state_dict(state)
    return made


def _gated_reference(inputs: dict[str, Any]) -> GatedInverseAutoregressive:
    spec, state = inputs["made"]["spec"], inputs["made"]["state"]
    reference = GatedInverseAutoregressive(
        int(spec["features"]), hidden_features=int(spec["hidden"]), order=spec["order"].clone()
    ).double()
    reference.made.load_state_dict(state)
    return reference


def _respond_gated(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    made = _build_made(inputs["made"]["spec"], inputs["made"]["state"])
    return respond_layer(lambda: answer(made), inputs["x"], inputs["z"])


def _judge_gated(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    reference = _gated_reference(inputs)

    points = {
        "inverse_value": 1.0,
        "inverse_log_det": 0.5,
        "forward_value": 1.0,
        "forward_log_det": 0.5,
    }
    return judge_transform(inputs, outputs, reference, points, built_by="MyGatedStep(made)")


GATED_STEP = Question(
    id="iaf.gated_step",
    exercise="iaf-ex-gated",
    title="Implement the gated IAF step",
    answer_name="MyGatedStep",
    kind="class",
    contract=(
        "MyGatedStep(made) -> Transform. made: a float64 MADE with output_multiplier=2 whose "
        "output chunks (made(z).chunk(2, dim=1)) are the proposal m and the gate logit s, and "
        "whose ordering is made.order. inverse(z) -> (x, log|det dx/dz|) with "
        "x = sigmoid(s) * z + (1 - sigmoid(s)) * m, (m, s) = made(z) (one pass); forward(x) -> "
        "(z, log|det dz/dx|) inverts it in D passes. Shapes (batch, D) and (batch,), float64."
    ),
    points=3.0,
    make_inputs=_gated_inputs,
    respond=_respond_gated,
    judge=_judge_gated,
    protected=("flowcourse.autoregressive.iaf:GatedInverseAutoregressive",),
    open_book="flowcourse.autoregressive.GatedInverseAutoregressive is the reference layer.",
)


QUESTIONS = [GATED_STEP]

#: Proof-only exercises carry no points (the proofs of these exercises are self-assessed
#: parts beside their graded parts).
SELF_ASSESSED: dict[str, str] = {}
