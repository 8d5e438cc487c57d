r"""Graded questions of the chapter *Summary: the eight models side by side*.

- ``summary.swap`` (exercise ``summary-ex-swap``): a wrapper that exchanges the two
  directions of any transform, checked on a MAF layer with random weights.
- ``summary.sinh_arcsinh`` (exercise ``summary-ex-sinh-arcsinh``): the elementwise
  transform :math:`z = \sinh(a \operatorname{arcsinh}(x) - b)`, :math:`a = e^{\ell}`, its
  inverse and its log-determinant.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from flowcourse.autoregressive import MaskedAffineAutoregressive
from flowcourse.core import Transform
from flowcourse.exercises.question import Question, Result, attempt, diagnostic, not_answered
from flowcourse.exercises.transforms import judge_transform, respond_transform

__all__ = ["QUESTIONS", "SELF_ASSESSED"]


# --- summary.swap -----------------------------------------------------------------------


def _swap_inputs(generator: torch.Generator) -> dict[str, Any]:
    features = int(torch.randint(3, 7, (1,), generator=generator))
    hidden = int(torch.randint(8, 17, (1,), generator=generator))
    order = torch.randperm(features, generator=generator) + 1
    spec = {"features": features, "hidden": hidden, "order": order}
    layer = _build_maf(spec)
    state = layer.state_dict()
    for name, parameter in layer.named_parameters():
        state[name] = 0.4 * torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
    batch = int(torch.randint(5, 9, (1,), generator=generator))
    return {
        "maf": {"spec": spec, "state": state},
        "x": torch.randn(batch, features, generator=generator, dtype=torch.float64),
        "z": torch.randn(batch, features, generator=generator, dtype=torch.float64),
    }


def _build_maf(
    spec: dict[str, Any], state: dict[str, Tensor] | None = None
) -> MaskedAffineAutoregressive:
    layer = MaskedAffineAutoregressive(
        int(spec["features"]), hidden_features=int(spec["hidden"]), order=spec["order"].clone()
    ).double()
    if state is not None:
        layer.load_state_dict(state)
    return layer


def _respond_swap(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    maf_layer = _build_maf(inputs["maf"]["spec"], inputs["maf"]["state"])
    outputs: dict[str, Any] = {}
    swapped = attempt(outputs, "layer", lambda: answer(maf_layer))
    outputs.pop("layer", None)
    if swapped is None:
        return outputs
    outputs |= respond_transform(swapped, inputs["x"], inputs["z"])
    # Count the MADE passes of each direction (a diagnostic: IAF's costs).
    calls: list[int] = []

    def passes(direction: str, tensor: Tensor) -> int:
        calls.clear()
        with torch.no_grad():
            getattr(swapped, direction)(tensor)
        return len(calls)

    handle = maf_layer.made.register_forward_hook(lambda *_: calls.append(1))
    try:
        attempt(outputs, "forward_passes", lambda: passes("forward", inputs["x"]))
        attempt(outputs, "inverse_passes", lambda: passes("inverse", inputs["z"]))
    finally:
        handle.remove()
    if not not_answered(outputs):  # a stub still earns "not answered yet"
        outputs["is_transform"] = isinstance(swapped, Transform)
    return outputs


def _judge_swap(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    maf_layer = _build_maf(inputs["maf"]["spec"], inputs["maf"]["state"])

    def run(direction: str, tensor: Tensor) -> tuple[Tensor, Tensor]:
        # Swap(layer).forward is layer.inverse and the other way round.
        swapped = {"forward": "inverse", "inverse": "forward"}[direction]
        with torch.no_grad():
            return getattr(maf_layer, swapped)(tensor)

    points = {
        "forward_value": 0.5,
        "forward_log_det": 0.5,
        "inverse_value": 0.5,
        "inverse_log_det": 0.5,
    }
    results = judge_transform(inputs, outputs, run, points, built_by="Swap(layer)")
    names = {
        "forward(x) returns z": "forward(x) returns layer.inverse(x)[0]",
        "forward(x) returns log|det dz/dx|": "forward(x) returns layer.inverse(x)[1]",
        "inverse(z) returns x": "inverse(z) returns layer.forward(z)[0]",
        "inverse(z) returns log|det dx/dz|": "inverse(z) returns layer.forward(z)[1]",
    }
    results = [replace(result, name=names.get(result.name, result.name)) for result in results]
    features = int(inputs["maf"]["spec"]["features"])
    if "forward_passes" in outputs and "inverse_passes" in outputs:
        passes = (outputs["forward_passes"], outputs["inverse_passes"])
        iaf = passes == (features, 1)
        results.append(
            diagnostic(
                "MADE passes (density, sampling)",
                iaf,
                f"{passes[0]} and {passes[1]} for D = {features}"
                + (": an IAF layer" if iaf else f"; a swapped MAF layer takes {features} and 1"),
            )
        )
    is_transform = outputs.get("is_transform") is True
    if "is_transform" in outputs:
        results.append(
            diagnostic(
                "is a Transform",
                is_transform,
                "it is"
                if is_transform
                else "subclass flowcourse.core.Transform, so that flows and the checks can use it",
            )
        )
    return results


SWAP = Question(
    id="summary.swap",
    exercise="summary-ex-swap",
    title="IAF is MAF read backwards: swap a transform's directions",
    answer_name="Swap",
    kind="class",
    contract=(
        "Swap(layer) -> Transform, for any transform layer. Swap(layer).forward(x) returns "
        "what layer.inverse(x) returns and Swap(layer).inverse(z) what layer.forward(z) "
        "returns: (value, log_abs_det) with shapes (batch, D) and (batch,), float64. "
        "Without flowcourse.core.Inverse."
    ),
    points=2.0,
    make_inputs=_swap_inputs,
    respond=_respond_swap,
    judge=_judge_swap,
    protected=("flowcourse.core:Inverse",),
    open_book="flowcourse.core.Inverse is this wrapper.",
)


# --- summary.sinh_arcsinh ---------------------------------------------------------------


def _sinh_arcsinh_inputs(generator: torch.Generator) -> dict[str, Any]:
    features = int(torch.randint(2, 7, (1,), generator=generator))
    batch = int(torch.randint(5, 9, (1,), generator=generator))
    # |log_a| >= 0.15 and |b| >= 0.2 everywhere, so that a = 1 or b = 0 is always wrong.
    sign = torch.where(torch.rand(features, generator=generator) < 0.5, -1.0, 1.0).double()
    log_a = sign * (0.15 + 0.5 * torch.rand(features, generator=generator, dtype=torch.float64))
    sign = torch.where(torch.rand(features, generator=generator) < 0.5, -1.0, 1.0).double()
    b = sign * (0.2 + torch.rand(features, generator=generator, dtype=torch.float64))
    return {
        "features": features,
        "log_a": log_a,
        "b": b,
        "x": 2 * torch.randn(batch, features, generator=generator, dtype=torch.float64),
        "z": 1.5 * torch.randn(batch, features, generator=generator, dtype=torch.float64),
    }


def _sinh_arcsinh_forward(inputs: dict[str, Any], x: Tensor) -> tuple[Tensor, Tensor]:
    log_a, b = inputs["log_a"], inputs["b"]
    w = log_a.exp() * torch.asinh(x) - b
    log_derivative = log_a + torch.log(torch.cosh(w)) - 0.5 * torch.log1p(x**2)
    return torch.sinh(w), log_derivative.sum(dim=1)


def _sinh_arcsinh_reference(inputs: dict[str, Any], direction: str, tensor: Tensor):
    if direction == "forward":
        return _sinh_arcsinh_forward(inputs, tensor)
    x = torch.sinh((torch.asinh(tensor) + inputs["b"]) / inputs["log_a"].exp())
    return x, -_sinh_arcsinh_forward(inputs, x)[1]


def _set_parameters(layer: Any, inputs: dict[str, Any]) -> Any:
    """Make ``layer`` float64 and give its ``log_a`` and ``b`` the grader's values."""
    if isinstance(layer, torch.nn.Module):
        layer = layer.double()
    with torch.no_grad():
        for name in ("log_a", "b"):
            target = getattr(layer, name, None)
            if not isinstance(target, Tensor):
                raise AttributeError(f"expected a tensor attribute {name!r} of shape (D,)")
            if tuple(target.shape) != tuple(inputs[name].shape):
                raise ValueError(
                    f"expected {name} of shape {tuple(inputs[name].shape)}, got "
                    f"{tuple(target.shape)}"
                )
            target.copy_(inputs[name])
    return layer


def _respond_sinh_arcsinh(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    layer = attempt(
        outputs, "layer", lambda: _set_parameters(answer(int(inputs["features"])), inputs)
    )
    outputs.pop("layer", None)
    if layer is None:
        return outputs
    return outputs | respond_transform(layer, inputs["x"], inputs["z"])


def _judge_sinh_arcsinh(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:

    def run(direction: str, tensor: Tensor) -> tuple[Tensor, Tensor]:
        return _sinh_arcsinh_reference(inputs, direction, tensor)

    points = {
        "forward_value": 0.5,
        "forward_log_det": 1.0,
        "inverse_value": 1.0,
        "inverse_log_det": 0.5,
    }
    results = judge_transform(
        inputs,
        outputs,
        run,
        points,
        built_by="SinhArcsinh(features), then setting its log_a and b,",
    )
    jac = outputs.get("jacobian")
    if isinstance(jac, Tensor) and jac.dim() == 3 and jac.shape[1] == jac.shape[2]:
        off_diagonal = jac - torch.diag_embed(jac.diagonal(dim1=1, dim2=2))
        leak = float(off_diagonal.abs().max()) if off_diagonal.numel() else 0.0
        diagonal = leak == 0.0 and bool((jac.diagonal(dim1=1, dim2=2) != 0).all())
        results.append(
            diagnostic(
                "diagonal Jacobian (autoregressive in every order)",
                diagonal,
                "each z_i depends on x_i only"
                if diagonal
                else f"off-diagonal entries up to {leak:.3g}, or a zero on the diagonal: "
                "each z_i must depend on x_i only, and on it",
            )
        )
    return results


SINH_ARCSINH = Question(
    id="summary.sinh_arcsinh",
    exercise="summary-ex-sinh-arcsinh",
    title="A new row for the table: the sinh-arcsinh transform",
    answer_name="SinhArcsinh",
    kind="class",
    contract=(
        "SinhArcsinh(features) -> Transform with tensor attributes log_a (l) and b of shape "
        "(features,) (nn.Parameter; the grader calls .double() and sets them). forward(x) -> "
        "(z, log|det dz/dx|) with z = sinh(exp(log_a) * asinh(x) - b); inverse(z) -> (x, "
        "log|det dx/dz|). Shapes (batch, D) and (batch,), float64."
    ),
    points=3.0,
    make_inputs=_sinh_arcsinh_inputs,
    respond=_respond_sinh_arcsinh,
    judge=_judge_sinh_arcsinh,
)

QUESTIONS = [SWAP, SINH_ARCSINH]

#: Proof-only exercises carry no points.
SELF_ASSESSED: dict[str, str] = {}
