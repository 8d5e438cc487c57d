r"""Shared steps of the questions whose answer is a transform (a layer).

The student's layer is called on grader-chosen inputs in both directions; the grader
compares each result with the reference layer's and explains a disagreement with the
properties every transform of the course has:

- **invertible**: ``inverse(forward(x)) == x``;
- **log-determinant**: ``forward``'s ``log_abs_det`` equals :math:`\log|\det J|` of
  the autograd Jacobian :math:`J = \partial z/\partial x` of the student's own
  ``forward`` (computed beside the student's code);
- **shapes and dtypes**: ``z`` like ``x``, ``log_abs_det`` of shape ``(batch,)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from flowcourse.checks import jacobian
from flowcourse.exercises.question import Result, attempt, compare, diagnostic
from flowcourse.nets import MLP

__all__ = [
    "JACOBIAN_SAMPLES",
    "build_mlp",
    "draw_mlp",
    "judge_transform",
    "respond_layer",
    "respond_transform",
]

JACOBIAN_SAMPLES = 3


def draw_mlp(
    generator: torch.Generator, in_features: int, out_features: int, hidden: int = 16
) -> dict[str, Any]:
    """The spec and random float64 weights of an :class:`~flowcourse.nets.MLP`."""
    spec = {"in_features": in_features, "out_features": out_features, "hidden": hidden}
    network = build_mlp(spec)
    state = {
        name: 0.5 * torch.randn(value.shape, generator=generator, dtype=torch.float64)
        for name, value in network.state_dict().items()
    }
    return {"spec": spec, "state": state}


def build_mlp(spec: dict[str, Any], state: dict[str, Tensor] | None = None) -> nn.Module:
    """The float64 MLP of ``spec`` with the weights ``state`` (from :func:`draw_mlp`)."""
    network = MLP(
        int(spec["in_features"]), int(spec["out_features"]), hidden_features=int(spec["hidden"])
    ).double()
    if state is not None:
        network.load_state_dict(state)
    return network


def _split_pair(outputs: dict[str, Any], key: str) -> None:
    """Replace ``outputs[key]`` = ``[value, log_abs_det]`` by two entries."""
    if key not in outputs:
        if f"{key}:error" in outputs:
            message = outputs[f"{key}:error"]
            outputs[f"{key}_value:error"] = outputs[f"{key}_log_det:error"] = message
        return
    pair = outputs.pop(key)
    if isinstance(pair, list) and len(pair) == 2:
        outputs[f"{key}_value"], outputs[f"{key}_log_det"] = pair
    else:
        message = f"returned {type(pair).__name__}, expected a pair (tensor, log_abs_det)"
        outputs[f"{key}_value:error"] = outputs[f"{key}_log_det:error"] = message


def respond_transform(
    layer: Any, x: Tensor, z: Tensor, *, directions: tuple[str, ...] = ("forward", "inverse")
) -> dict[str, Any]:
    """Call the student's ``layer`` on ``x`` (forward) and ``z`` (inverse); also the
    round trip and the autograd Jacobian of its forward on the first samples."""
    outputs: dict[str, Any] = {}
    if "forward" in directions:
        result = attempt(outputs, "forward", lambda: layer.forward(x))
        _split_pair(outputs, "forward")
        if "inverse" in directions and result is not None:
            attempt(outputs, "round_trip", lambda: layer.inverse(result[0])[0])
        attempt(outputs, "jacobian", lambda: jacobian(layer, x[:JACOBIAN_SAMPLES]))
    if "inverse" in directions:
        result = attempt(outputs, "inverse", lambda: layer.inverse(z))
        _split_pair(outputs, "inverse")
        if "forward" not in directions:
            attempt(outputs, "jacobian", lambda: _inverse_jacobian(layer, z[:JACOBIAN_SAMPLES]))
    return outputs


def respond_layer(build: Callable[[], Any], x: Tensor, z: Tensor) -> dict[str, Any]:
    """Build the student's layer with ``build()`` (its error is recorded under
    ``"layer:error"``), then :func:`respond_transform` on it."""
    outputs: dict[str, Any] = {}
    layer = attempt(outputs, "layer", build)
    outputs.pop("layer", None)
    if layer is None:
        return outputs
    return outputs | respond_transform(layer, x, z)


def _inverse_jacobian(layer: Any, z: Tensor) -> Tensor:
    class _Swapped(nn.Module):
        def forward(self, value: Tensor) -> tuple[Tensor, Tensor]:
            return layer.inverse(value)

    return jacobian(_Swapped(), z)


def judge_transform(
    inputs: dict[str, Any],
    outputs: dict[str, Any],
    reference: nn.Module | Callable[[str, Tensor], tuple[Tensor, Tensor]],
    points: dict[str, float],
    *,
    built_by: str = "building the layer",
) -> list[Result]:
    """Compare the student's outputs with the reference layer's (or with
    ``reference(direction, tensor)``).

    ``points`` gives the points of ``"forward_value"``, ``"forward_log_det"``,
    ``"inverse_value"``, ``"inverse_log_det"`` (omit a key to skip that part). When the
    student's layer could not be built (:func:`respond_layer`), the result says so with
    ``built_by`` (e.g. ``"MyMAFLayer(made)"``) and earns nothing.
    """
    if "layer:error" in outputs:
        message = f"{built_by} raised {outputs['layer:error']}"
        return [Result("constructor", False, 0.0, sum(points.values()), message)]
    if isinstance(reference, nn.Module):
        module = reference

        def reference(direction: str, tensor: Tensor) -> tuple[Tensor, Tensor]:
            with torch.no_grad():
                return getattr(module, direction)(tensor)

    x, z = inputs["x"], inputs["z"]
    results = []
    names = {
        "forward_value": "forward(x) returns z",
        "forward_log_det": "forward(x) returns log|det dz/dx|",
        "inverse_value": "inverse(z) returns x",
        "inverse_log_det": "inverse(z) returns log|det dx/dz|",
    }
    expected: dict[str, Tensor] = {}
    if "forward_value" in points or "forward_log_det" in points:
        expected["forward_value"], expected["forward_log_det"] = reference("forward", x)
    if "inverse_value" in points or "inverse_log_det" in points:
        expected["inverse_value"], expected["inverse_log_det"] = reference("inverse", z)
    passed: dict[str, bool] = {}
    for key, worth in points.items():
        result = compare(names[key], outputs, key, expected[key], worth, key.replace("_", " "))
        value_key = key.replace("_log_det", "_value")
        if key.endswith("_log_det") and result.passed and not passed.get(value_key, True):
            # A log-determinant earns points only for the map that was asked for: the
            # identity map has log|det| = 0, which is right for a volume-preserving layer.
            result = Result(
                result.name,
                False,
                0.0,
                worth,
                f"{result.message}, but it earns points only with a correct {value_key}",
            )
        passed[key] = result.passed
        results.append(result)
    results.extend(_properties(inputs, outputs, "forward_value" in expected))
    return results


def _properties(inputs: dict[str, Any], outputs: dict[str, Any], forward: bool) -> list[Result]:
    """Diagnostics (no points): invertibility and log-determinant against autograd."""
    results = []
    x = inputs["x"]
    if "round_trip" in outputs:
        check = compare("invertible", outputs, "round_trip", x, 0.0, "inverse(forward(x))")
        message = (
            "inverse(forward(x)) returns x"
            if check.passed
            else check.message.replace("inverse(forward(x))", "inverse(forward(x)) vs x")
        )
        results.append(diagnostic("invertible", check.passed, message))
    jac = outputs.get("jacobian")
    key = "forward_log_det" if forward else "inverse_log_det"
    own = outputs.get(key)
    if isinstance(jac, Tensor) and isinstance(own, Tensor) and jac.dim() == 3:
        count = jac.shape[0]
        if jac.shape[1] == jac.shape[2] and own.shape[:1] and own.shape[0] >= count:
            autograd = torch.linalg.slogdet(jac.to(torch.float64))[1]
            mine = own[:count].to(torch.float64)
            ok = bool(torch.allclose(mine, autograd, atol=1e-6, rtol=1e-6))
            message = (
                f"log_abs_det equals log|det J| of your own {key.split('_')[0]} (autograd)"
                if ok
                else f"sample 0: your log_abs_det is {float(mine[0]):.6g}, the autograd "
                f"Jacobian of your own {key.split('_')[0]} gives {float(autograd[0]):.6g}"
            )
            results.append(diagnostic("log-determinant matches autograd", ok, message))
    return results
