r"""Graded questions of the chapter *Variational inference with planar and radial flows*.

- ``vi.planar_u_hat`` (exercise ``vi-ex-planar-constraint``): the corrected vector
  :math:`\hat u = u + (m(w^\top u) - w^\top u)\, w / \lVert w\rVert^2` with
  :math:`m(a) = -1 + \log(1 + e^{a})`, at grader-chosen :math:`u, w`.
- ``vi.radial_sampler`` (exercise ``vi-ex-radial`` (2)): the radial sampling map
  :math:`x = z + \beta h(r)(z - z_0)` and its log-determinant.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from flowcourse.core import Transform
from flowcourse.exercises.question import (
    Question,
    Result,
    attempt,
    compare,
    diagnostic,
    not_answered,
)
from flowcourse.exercises.transforms import judge_transform, respond_transform
from flowcourse.vi import Radial

__all__ = ["QUESTIONS", "SELF_ASSESSED"]


# --- vi.planar_u_hat -------------------------------------------------------------------

#: m(a) - a = log(1 + e^-a) - 1 vanishes at a = -log(e - 1): there u_hat = u, and the
#: identity answer would be right, so no case is drawn near it.
_FIXED_POINT = -math.log(math.e - 1)


def _planar_inputs(generator: torch.Generator) -> dict[str, Any]:
    cases = []
    # Three cases that violate w^T u >= -1 (the correction folds them back) and three
    # that satisfy it (the correction still moves u, by less than |w|^-1).
    targets = [-1.5 - 6 * float(torch.rand((), generator=generator)) for _ in range(3)]
    targets += [_FIXED_POINT + 0.4 + 5 * float(torch.rand((), generator=generator))]
    targets += [-0.9 + 0.25 * float(torch.rand((), generator=generator))]
    targets += [1.0 + 3 * float(torch.rand((), generator=generator))]
    for target in targets:
        features = int(torch.randint(2, 7, (1,), generator=generator))
        w = torch.randn(features, generator=generator, dtype=torch.float64)
        w = w * (0.5 + float(torch.rand((), generator=generator))) / w.norm()
        u = torch.randn(features, generator=generator, dtype=torch.float64)
        u = u - (w @ u) * w / (w @ w) + target * w / (w @ w)  # now w^T u = target
        cases.append({"u": u, "w": w})
    return {"cases": cases}


def _expected_u_hat(u: Tensor, w: Tensor) -> Tensor:
    w_dot_u = w @ u
    return u + (F.softplus(w_dot_u) - 1 - w_dot_u) * w / (w @ w)


def _slope(case: dict[str, Tensor]) -> float:
    return float(case["w"] @ case["u"])


def _respond_planar(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for index, case in enumerate(inputs["cases"]):
        u, w = case["u"].clone(), case["w"].clone()
        attempt(outputs, f"u_hat_{index}", lambda u=u, w=w: answer(u, w))
    return outputs


def _judge_planar(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    violating, satisfying = [], []
    for index, case in enumerate(inputs["cases"]):
        (violating if _slope(case) < -1 else satisfying).append(index)
    results = []
    for name, indices in (
        ("cases with w^T u < -1 (the layer would fold)", violating),
        ("cases with w^T u >= -1 (already invertible)", satisfying),
    ):
        # One point for the group, earned only if every case of the group agrees; the
        # message names the first case that does not.
        checks = []
        for index in indices:
            case = inputs["cases"][index]
            what = f"u_hat for w^T u = {_slope(case):.3g} (D = {case['u'].shape[0]})"
            expected = _expected_u_hat(case["u"], case["w"])
            checks.append(compare(name, outputs, f"u_hat_{index}", expected, 1.0, what))
        failed = [check for check in checks if not check.passed]
        if failed:
            message = f"{len(failed)} of {len(checks)} cases fail; {failed[0].message}"
            results.append(Result(name, False, 0.0, 1.0, message))
        else:
            slopes = ", ".join(f"{_slope(inputs['cases'][i]):.3g}" for i in indices)
            message = f"u_hat agrees for w^T u = {slopes}"
            results.append(Result(name, True, 1.0, 1.0, message))
    # Diagnostics: the two properties of part 1, on the answer's own values.
    constrained, parallel, counted = True, True, 0
    for index, case in enumerate(inputs["cases"]):
        value = outputs.get(f"u_hat_{index}")
        if not isinstance(value, Tensor) or value.shape != case["u"].shape:
            continue
        counted += 1
        u, w = case["u"], case["w"]
        value = value.to(torch.float64)
        constrained &= bool(w @ value > -1)
        difference = value - u
        residual = difference - (difference @ w) * w / (w @ w)
        parallel &= bool(residual.norm() <= 1e-6 * (1 + difference.norm()))
    if counted:
        results.append(
            diagnostic(
                "w^T u_hat > -1",
                constrained,
                "holds in every case"
                if constrained
                else "fails in some case: the planar "
                "layer built with your u_hat could fold the space",
            )
        )
        results.append(
            diagnostic(
                "u_hat - u is parallel to w",
                parallel,
                "holds in every case"
                if parallel
                else "fails: the correction must change u only along w",
            )
        )
    return results


PLANAR_U_HAT = Question(
    id="vi.planar_u_hat",
    exercise="vi-ex-planar-constraint",
    title="The planar constraint: u_hat",
    answer_name="planar_u_hat",
    kind="function",
    contract=(
        "planar_u_hat(u, w) -> u_hat: u and w float64 tensors of shape (D,), w != 0; returns "
        "u + (m(w^T u) - w^T u) w / |w|^2 with m(a) = -1 + log(1 + e^a), a tensor of shape "
        "(D,)."
    ),
    points=2.0,
    make_inputs=_planar_inputs,
    respond=_respond_planar,
    judge=_judge_planar,
    protected=(
        "flowcourse.vi.planar:Planar.u_hat",
        "flowcourse.vi.planar:Planar.w_dot_u_hat",
    ),
    open_book="Planar.u_hat (and Planar.w_dot_u_hat) in flowcourse.vi.planar compute it.",
)


# --- vi.radial_sampler -----------------------------------------------------------------


def _radial_inputs(generator: torch.Generator) -> dict[str, Any]:
    # D >= 3, so that the multiplicity D - 1 of the eigenvalue 1 + beta h matters.
    features = int(torch.randint(3, 7, (1,), generator=generator))
    batch = int(torch.randint(5, 9, (1,), generator=generator))
    alpha = 0.5 + 1.5 * float(torch.rand((), generator=generator))
    # beta > -alpha (invertible) and |beta| >= 0.3, so that the map is far from the
    # identity: a contraction (beta < 0) or an expansion (beta > 0), with equal chance.
    share = float(torch.rand((), generator=generator))
    if bool(torch.rand((), generator=generator) < 0.5):
        beta = -alpha + 0.05 + (alpha - 0.35) * share
    else:
        beta = 0.3 + 2.7 * share
    center = torch.randn(features, generator=generator, dtype=torch.float64)
    # Points at all distances from the center, some close to it.
    z = center + torch.randn(batch, features, generator=generator, dtype=torch.float64) * (
        0.2 + 2 * torch.rand(batch, 1, generator=generator, dtype=torch.float64)
    )
    return {"center": center, "alpha": alpha, "beta": beta, "z": z, "x": z.clone()}


def _radial_reference(inputs: dict[str, Any]) -> Radial:
    def inverse_softplus(value: float) -> float:
        return value + math.log(-math.expm1(-value))

    layer = Radial(int(inputs["center"].shape[0])).double()
    with torch.no_grad():
        layer.center.copy_(inputs["center"])
        layer.raw_alpha.fill_(inverse_softplus(float(inputs["alpha"])))
        layer.raw_beta.fill_(inverse_softplus(float(inputs["beta"]) + float(inputs["alpha"])))
    return layer


def _respond_radial(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    layer = attempt(
        outputs,
        "layer",
        lambda: answer(inputs["center"].clone(), float(inputs["alpha"]), float(inputs["beta"])),
    )
    outputs.pop("layer", None)
    if layer is None:
        return outputs
    outputs |= respond_transform(layer, inputs["x"], inputs["z"], directions=("inverse",))
    if not not_answered(outputs):  # a stub still earns "not answered yet"
        outputs["is_transform"] = isinstance(layer, Transform)
    return outputs


def _judge_radial(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    reference = _radial_reference(inputs)

    points = {"inverse_value": 1.0, "inverse_log_det": 2.0}
    results = judge_transform(
        inputs, outputs, reference, points, built_by="MyRadial(center, alpha, beta)"
    )
    is_transform = outputs.get("is_transform") is True
    if "is_transform" in outputs:
        results.append(
            diagnostic(
                "is a Transform",
                is_transform,
                "it is, so Inverse(layer) works"
                if is_transform
                else "subclass "
                "flowcourse.core.Transform, so that check_log_det(Inverse(layer), z) can wrap it",
            )
        )
    return results


RADIAL_SAMPLER = Question(
    id="vi.radial_sampler",
    exercise="vi-ex-radial",
    title="The radial sampling map and its log-determinant",
    answer_name="MyRadial",
    kind="class",
    contract=(
        "MyRadial(center, alpha, beta) -> Transform. center: float64 tensor (D,) (z_0); alpha "
        "> 0 and beta > -alpha: Python floats. inverse(z) -> (x, log_abs_det): x = z + beta "
        "h(r) (z - center), h(r) = 1 / (alpha + r), r = |z - center| per row; z of shape "
        "(batch, D), log_abs_det = log|det dx/dz| of shape (batch,), float64. forward may raise."
    ),
    points=3.0,
    make_inputs=_radial_inputs,
    respond=_respond_radial,
    judge=_judge_radial,
    protected=("flowcourse.vi.radial:Radial",),
    open_book="flowcourse.vi.Radial is the reference layer.",
)

QUESTIONS = [PLANAR_U_HAT, RADIAL_SAMPLER]

#: Proof-only exercises carry no points (the proofs of these exercises are self-assessed
#: parts beside their graded parts).
SELF_ASSESSED: dict[str, str] = {}
