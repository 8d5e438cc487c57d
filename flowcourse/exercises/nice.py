r"""Graded questions of the chapter *NICE: additive coupling layers*.

- ``nice.additive_coupling`` (exercise ``nice-ex-implement``): the layer
  :math:`z = x + (1 - m) \odot t(m \odot x)` and its inverse.
- ``nice.nll_gap_bound`` (exercise ``nice-ex-volume`` (b)): the lower bound
  :math:`-\tfrac{D}{2} - D \log\sigma` nats on the NLL gap of a volume-preserving flow.
- ``nice.scaling_to_end`` (exercise ``nice-ex-scaling-end`` (b)): the coupling
  :math:`C'` with :math:`C \circ S = S \circ C'`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from flowcourse.core import Compose
from flowcourse.coupling import AdditiveCoupling, DiagonalScaling
from flowcourse.exercises.question import Question, Result, attempt, compare, diagnostic
from flowcourse.exercises.transforms import (
    build_mlp,
    draw_mlp,
    judge_transform,
    respond_layer,
)

__all__ = ["QUESTIONS", "SELF_ASSESSED"]


def _random_mask(generator: torch.Generator, features: int) -> Tensor:
    """A random bool mask with at least one kept and one transformed coordinate."""
    while True:
        mask = torch.rand(features, generator=generator) < 0.5
        if 0 < int(mask.sum()) < features:
            return mask


def _coupling_inputs(generator: torch.Generator) -> dict[str, Any]:
    features = int(torch.randint(3, 8, (1,), generator=generator))
    batch = int(torch.randint(5, 9, (1,), generator=generator))
    return {
        "mask": _random_mask(generator, features),
        "conditioner": draw_mlp(generator, features, features),
        "x": torch.randn(batch, features, generator=generator, dtype=torch.float64),
        "z": torch.randn(batch, features, generator=generator, dtype=torch.float64),
    }


def _respond_coupling(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    conditioner = build_mlp(**_mlp(inputs["conditioner"]))
    return respond_layer(
        lambda: answer(inputs["mask"].clone(), conditioner), inputs["x"], inputs["z"]
    )


def _mlp(drawn: dict[str, Any]) -> dict[str, Any]:
    return {"spec": drawn["spec"], "state": drawn["state"]}


def _judge_coupling(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    reference = AdditiveCoupling(inputs["mask"], build_mlp(**_mlp(inputs["conditioner"])))

    points = {
        "forward_value": 1.0,
        "forward_log_det": 0.5,
        "inverse_value": 1.0,
        "inverse_log_det": 0.5,
    }
    return judge_transform(
        inputs, outputs, reference, points, built_by="MyAdditiveCoupling(mask, conditioner)"
    )


ADDITIVE_COUPLING = Question(
    id="nice.additive_coupling",
    exercise="nice-ex-implement",
    title="Implement an additive coupling",
    answer_name="MyAdditiveCoupling",
    kind="class",
    contract=(
        "MyAdditiveCoupling(mask, conditioner) -> Transform. mask: bool tensor (D,), "
        "True = kept; conditioner: nn.Module mapping (batch, D) -> (batch, D), float64. "
        "forward(x) -> (z, log_abs_det) with z of shape (batch, D) and log_abs_det of shape "
        "(batch,); inverse(z) -> (x, log_abs_det). Same dtype as the input."
    ),
    points=3.0,
    make_inputs=_coupling_inputs,
    respond=_respond_coupling,
    judge=_judge_coupling,
    protected=("flowcourse.coupling.additive:AdditiveCoupling",),
    open_book="flowcourse.coupling.AdditiveCoupling is the reference layer.",
)


def _gap_inputs(generator: torch.Generator) -> dict[str, Any]:
    dims = torch.randint(1, 12, (6,), generator=generator).tolist()
    sigmas = (0.05 + 0.5 * torch.rand(6, generator=generator, dtype=torch.float64)).tolist()
    return {"cases": [[int(d), float(s)] for d, s in zip(dims, sigmas, strict=True)]}


def _respond_gap(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    attempt(outputs, "bounds", lambda: [float(answer(d, s)) for d, s in inputs["cases"]])
    return outputs


def _judge_gap(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    expected = torch.tensor(
        [-d / 2 - d * math.log(s) for d, s in inputs["cases"]], dtype=torch.float64
    )
    what = "the bounds for the (num_dims, sigma) cases " + ", ".join(
        f"({d}, {s:.3f})" for d, s in inputs["cases"]
    )
    return [compare("lower bound in nats", outputs, "bounds", expected, 2.0, what, 1e-6, 1e-6)]


NLL_GAP_BOUND = Question(
    id="nice.nll_gap_bound",
    exercise="nice-ex-volume",
    title="The NLL gap of a volume-preserving flow",
    answer_name="nll_gap_lower_bound",
    kind="function",
    contract=(
        "nll_gap_lower_bound(num_dims: int, sigma: float) -> float: the lower bound, in "
        "nats, on the expected test NLL minus the entropy of N(0, sigma^2 I_D) data, for a "
        "flow without scaling; sigma < exp(-1/2)."
    ),
    points=2.0,
    make_inputs=_gap_inputs,
    respond=_respond_gap,
    judge=_judge_gap,
)


def _scaling_inputs(generator: torch.Generator) -> dict[str, Any]:
    features = int(torch.randint(3, 7, (1,), generator=generator))
    return {
        "mask": _random_mask(generator, features),
        "conditioner": draw_mlp(generator, features, features),
        "log_scale": 0.5 * torch.randn(features, generator=generator, dtype=torch.float64),
        "x": torch.randn(7, features, generator=generator, dtype=torch.float64),
    }


def _scaling_and_coupling(inputs: dict[str, Any]) -> tuple[DiagonalScaling, AdditiveCoupling]:
    scaling = DiagonalScaling(inputs["log_scale"].shape[0]).double()
    with torch.no_grad():
        scaling.log_scale.copy_(inputs["log_scale"])
    coupling = AdditiveCoupling(inputs["mask"].clone(), build_mlp(**_mlp(inputs["conditioner"])))
    return scaling, coupling


def _respond_scaling(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    scaling, coupling = _scaling_and_coupling(inputs)
    outputs: dict[str, Any] = {}
    moved = attempt(outputs, "moved", lambda: answer(scaling, coupling))
    outputs.pop("moved", None)
    if moved is None:
        return outputs
    x = inputs["x"]
    attempt(outputs, "moved_z", lambda: moved(x)[0])
    attempt(outputs, "moved_log_det", lambda: moved(x)[1])
    attempt(outputs, "composed_z", lambda: Compose(moved, scaling)(x)[0])
    attempt(outputs, "is_additive", lambda: isinstance(moved, AdditiveCoupling))
    return outputs


def _judge_scaling(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    if "moved:error" in outputs:
        message = f"move_scaling_to_end(scaling, coupling) raised {outputs['moved:error']}"
        return [Result("returns a layer", False, 0.0, 2.0, message)]
    scaling, coupling = _scaling_and_coupling(inputs)
    x = inputs["x"]
    with torch.no_grad():
        expected_z = Compose(scaling, coupling)(x)[0]
        expected_moved = scaling.inverse(expected_z)[0]  # C'(x) = S^{-1}(C(S(x)))
    results = [
        compare("C'(x) = S^-1(C(S(x)))", outputs, "moved_z", expected_moved, 1.0, "C'(x)"),
        compare("C' then S equals S then C", outputs, "composed_z", expected_z, 1.0, "S(C'(x))"),
    ]
    additive = outputs.get("is_additive") is True
    results.append(
        diagnostic(
            "C' is an AdditiveCoupling",
            additive,
            "it is" if additive else "expected an AdditiveCoupling (the exercise builds one)",
        )
    )
    if "moved_log_det" in outputs:
        zero = compare(
            "", outputs, "moved_log_det", torch.zeros(x.shape[0], dtype=x.dtype), 0.0, ""
        )
        message = "log|det| of C' is 0" if zero.passed else "C' must preserve volume (log|det| 0)"
        results.append(diagnostic("C' preserves volume", zero.passed, message))
    return results


SCALING_TO_END = Question(
    id="nice.scaling_to_end",
    exercise="nice-ex-scaling-end",
    title="Move the scaling to the end",
    answer_name="move_scaling_to_end",
    kind="function",
    contract=(
        "move_scaling_to_end(scaling: DiagonalScaling, coupling: AdditiveCoupling) -> "
        "AdditiveCoupling C' with Compose(scaling, coupling) == Compose(C', scaling): same z "
        "and log-determinant, float64."
    ),
    points=2.0,
    make_inputs=_scaling_inputs,
    respond=_respond_scaling,
    judge=_judge_scaling,
)

QUESTIONS = [ADDITIVE_COUPLING, NLL_GAP_BOUND, SCALING_TO_END]

#: Proof-only exercises carry no points.
SELF_ASSESSED: dict[str, str] = {}
