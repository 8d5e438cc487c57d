r"""Graded questions of the chapter *MAF: masked autoregressive flows*.

- ``maf.maf_layer`` (exercise ``maf-ex-layer``): the layer
  :math:`z_i = (x_i - \mu_i) e^{-\alpha_i}` with :math:`\alpha = 3 \tanh(\tilde\alpha/3)`
  read from a given MADE, and its :math:`D`-pass inverse.
- ``maf.flow_costs`` (exercise ``maf-ex-costs``, part 1): the time to score and to sample
  a batch with a MAF and with an IAF, from the cost of one MADE pass.
- ``maf.dependency_pattern`` (exercise ``maf-ex-ordering``): which :math:`z_i` can depend
  on which :math:`x_j` after two stacked autoregressive layers with given orderings.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from flowcourse.autoregressive import MADE, MaskedAffineAutoregressive
from flowcourse.exercises.question import Question, Result, attempt, compare, diagnostic
from flowcourse.exercises.transforms import judge_transform, respond_layer

__all__ = ["QUESTIONS", "SELF_ASSESSED"]


def _randint(generator: torch.Generator, low: int, high: int) -> int:
    """An integer in ``[low, high]`` (both included)."""
    return int(torch.randint(low, high + 1, (1,), generator=generator))


def _random_order(generator: torch.Generator, features: int) -> Tensor:
    return torch.randperm(features, generator=generator) + 1


# --- maf.maf_layer ------------------------------------------------------------------


def _build_made(spec: dict[str, Any], state: dict[str, Tensor]) -> MADE:
    """The float64 MADE of ``spec`` with the parameters ``state`` (its masks are its own)."""
    made = MADE(
        int(spec["features"]),
        hidden_features=list(spec["widths"]),
        output_multiplier=2,
        order=spec["order"].clone(),
        zero_init_last=False,
    ).double()
    with torch.no_grad():
        for name, parameter in made.named_parameters():
            parameter.copy_(state[name])
    return made


def _layer_inputs(generator: torch.Generator) -> dict[str, Any]:
    features = _randint(generator, 3, 6)
    layers = _randint(generator, 1, 2)
    spec = {
        "features": features,
        "widths": [_randint(generator, features, features + 6) for _ in range(layers)],
        "order": _random_order(generator, features),
    }
    template = MADE(features, hidden_features=spec["widths"], output_multiplier=2).double()
    state = {
        name: 0.7 * torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
        for name, parameter in template.named_parameters()
    }
    batch = _randint(generator, 5, 8)
    return {
        "made": {"spec": spec, "state": state},
        "x": torch.randn(batch, features, generator=generator, dtype=torch.float64),
        "z": torch.randn(batch, features, generator=generator, dtype=torch.float64),
    }


def _respond_layer(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    made = _build_made(inputs["made"]["spec"], inputs["made"]["state"])
    return respond_layer(lambda: answer(made), inputs["x"], inputs["z"])


def _autoregressive(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    """Diagnostic: the student's forward Jacobian is triangular in the MADE's ordering."""
    jac = outputs.get("jacobian")
    order = inputs["made"]["spec"]["order"]
    features = order.numel()
    if not isinstance(jac, Tensor) or jac.dim() != 3 or jac.shape[1:] != (features, features):
        return []
    size = jac.to(torch.float64).abs().amax(dim=0)
    forbidden = order[None, :] > order[:, None]
    if bool((size[forbidden] > 0).any()):
        i, j = (size * forbidden).nonzero()[0].tolist()
        message = (
            f"z_{i} depends on x_{j}, which comes later in the ordering "
            f"({int(order[j])} > {int(order[i])})"
        )
        return [diagnostic("autoregressive in the MADE's ordering", False, message)]
    if bool((size.diagonal() == 0).any()):
        i = int((size.diagonal() == 0).nonzero()[0])
        message = f"z_{i} does not depend on x_{i}: not invertible"
        return [diagnostic("autoregressive in the MADE's ordering", False, message)]
    message = "the Jacobian of your forward is triangular in made.order, non-zero diagonal"
    return [diagnostic("autoregressive in the MADE's ordering", True, message)]


def _judge_layer(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    spec, state = inputs["made"]["spec"], inputs["made"]["state"]
    reference = MaskedAffineAutoregressive(
        int(spec["features"]), hidden_features=list(spec["widths"]), order=spec["order"].clone()
    ).double()
    reference.made.load_state_dict(_build_made(spec, state).state_dict())

    points = {
        "forward_value": 1.0,
        "forward_log_det": 1.0,
        "inverse_value": 1.0,
        "inverse_log_det": 1.0,
    }
    results = judge_transform(inputs, outputs, reference, points, built_by="MyMAFLayer(made)")
    return results + _autoregressive(inputs, outputs)


MAF_LAYER = Question(
    id="maf.maf_layer",
    exercise="maf-ex-layer",
    title="Write a MAF layer",
    answer_name="MyMAFLayer",
    kind="class",
    contract=(
        "MyMAFLayer(made) -> Transform, for a MADE with output_multiplier=2 whose output "
        "chunk(2, dim=1) is (mu, raw log-scale). forward(x) (batch, D) -> (z, log_abs_det) "
        "with z = (x - mu) * exp(-alpha), alpha = 3 tanh(raw / 3), log_abs_det = -sum(alpha) "
        "of shape (batch,), one MADE pass; inverse(z) -> (x, log_abs_det) in D passes. "
        "float64; the MADE has random weights and a random order (made.order)."
    ),
    points=4.0,
    make_inputs=_layer_inputs,
    respond=_respond_layer,
    judge=_judge_layer,
    protected=(
        "flowcourse.autoregressive.maf:MaskedAffineAutoregressive",
        "flowcourse.autoregressive.maf:_AffineAutoregressive",
    ),
    open_book="flowcourse.autoregressive.MaskedAffineAutoregressive is the reference layer.",
)


# --- maf.flow_costs -----------------------------------------------------------------

_COST_CASES = 5
_COST_KEYS = ("maf_score", "maf_sample", "iaf_score", "iaf_sample")


def _cost_inputs(generator: torch.Generator) -> dict[str, Any]:
    cases = []
    for _ in range(_COST_CASES):
        made_pass_ms = float(0.1 + 5 * torch.rand(1, generator=generator, dtype=torch.float64))
        cases.append([made_pass_ms, _randint(generator, 2, 12), _randint(generator, 3, 1000)])
    return {"cases": cases}


def _respond_costs(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for key in _COST_KEYS:
        attempt(
            outputs,
            key,
            lambda k=key: [
                float(answer(t, layers, dims)[k]) for t, layers, dims in inputs["cases"]
            ],
        )
    return outputs


def _judge_costs(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    cases = inputs["cases"]
    one_pass = torch.tensor([t * layers for t, layers, _ in cases], dtype=torch.float64)
    all_passes = torch.tensor([t * layers * dims for t, layers, dims in cases], dtype=torch.float64)
    expected = {
        "maf_score": one_pass,
        "maf_sample": all_passes,
        "iaf_score": all_passes,
        "iaf_sample": one_pass,
    }
    where = ", ".join(f"({t:.3f} ms, K={k}, D={d})" for t, k, d in cases)
    return [
        compare(key, outputs, key, expected[key], 0.5, f"{key} in ms at {where}", 1e-9, 1e-9)
        for key in _COST_KEYS
    ]


FLOW_COSTS = Question(
    id="maf.flow_costs",
    exercise="maf-ex-costs",
    title="Sampling or scoring: which flow?",
    answer_name="flow_costs_ms",
    kind="function",
    contract=(
        "flow_costs_ms(made_pass_ms, num_layers, num_dims) -> dict with the float keys "
        "'maf_score', 'maf_sample', 'iaf_score', 'iaf_sample': the time in ms to score one "
        "batch of data and to draw one batch of samples with a MAF and with an IAF of "
        "num_layers autoregressive layers over num_dims dimensions, when one MADE pass on a "
        "batch costs made_pass_ms whatever the dimension (D passes to invert a layer)."
    ),
    points=2.0,
    make_inputs=_cost_inputs,
    respond=_respond_costs,
    judge=_judge_costs,
)


# --- maf.dependency_pattern ---------------------------------------------------------

_ORDER_CASES = 5


def _layer_pattern(order: Tensor) -> Tensor:
    """Which outputs of one autoregressive layer can depend on which inputs."""
    return order[None, :] <= order[:, None]


def _stack_pattern(first: Tensor, second: Tensor) -> Tensor:
    """Boolean product: z_i reads h_m (second layer) and h_m reads x_j (first layer)."""
    product = _layer_pattern(second).to(torch.float64) @ _layer_pattern(first).to(torch.float64)
    return product > 0


def _ordering_cases(generator: torch.Generator) -> list[list[Tensor]]:
    cases = []
    for index in range(_ORDER_CASES):
        features = _randint(generator, 4, 8)
        first = _random_order(generator, features)
        # One case with the same ordering twice, one with the reversed one, random others.
        if index == 0:
            second = first.clone()
        elif index == 1:
            second = features + 1 - first
        else:
            second = _random_order(generator, features)
        cases.append([first, second])
    return cases


def _ordering_inputs(generator: torch.Generator) -> dict[str, Any]:
    while True:
        cases = _ordering_cases(generator)
        answers = [_stack_pattern(first, second) for first, second in cases]
        # Plausible wrong rules must fail somewhere: the product in the wrong order, the
        # first layer's pattern alone.
        wrong_rules = [
            [_stack_pattern(second, first) for first, second in cases],
            [_layer_pattern(first) for first, _ in cases],
        ]
        if all(
            any(not torch.equal(a, b) for a, b in zip(answers, rule, strict=True))
            for rule in wrong_rules
        ):
            return {"cases": cases}


def _respond_ordering(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for index, (first, second) in enumerate(inputs["cases"]):
        attempt(
            outputs,
            f"pattern_{index}",
            lambda a=first, b=second: (
                torch.as_tensor(answer(a.clone(), b.clone())).to(torch.float64) != 0
            ),
        )
    return outputs


def _judge_ordering(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    cases = []
    for index, (first, second) in enumerate(inputs["cases"]):
        key = f"pattern_{index}"
        expected = _stack_pattern(first, second).to(torch.float64)
        if isinstance(outputs.get(key), Tensor):
            outputs = outputs | {key: outputs[key].to(torch.float64)}
        what = f"the pattern for order_1 = {first.tolist()}, order_2 = {second.tolist()}"
        cases.append(compare(f"case {index}", outputs, key, expected, 0.0, what, 0.0, 0.0))
    return _all_cases("which z_i can depend on which x_j", cases, 2.0)


def _all_cases(name: str, cases: list[Result], points: float) -> list[Result]:
    """One graded result, earned only when every case agrees (a constant answer can
    match one case by chance), then each case as a diagnostic."""
    failed = [case for case in cases if not case.passed]
    message = (
        f"all {len(cases)} cases agree"
        if not failed
        else f"{len(failed)} of {len(cases)} cases disagree; {failed[0].name}: {failed[0].message}"
    )
    graded = Result(name, not failed, 0.0 if failed else points, points, message)
    return [graded, *(diagnostic(case.name, case.passed, case.message) for case in cases)]


DEPENDENCY_PATTERN = Question(
    id="maf.dependency_pattern",
    exercise="maf-ex-ordering",
    title="What two stacked layers can depend on",
    answer_name="dependency_pattern",
    kind="function",
    contract=(
        "dependency_pattern(order_1, order_2) -> bool tensor (D, D). order_k: long tensor (D,), "
        "a permutation of 1..D, the ordering of layer k (order_k[i] = position of feature i). "
        "Layer 1 maps x to h, layer 2 maps h to z, each z_i = (h_i - mu_i) exp(-alpha_i) with "
        "mu_i, alpha_i reading the earlier positions. Entry [i, j] is True when z_i can depend "
        "on x_j (for generic weights)."
    ),
    points=2.0,
    make_inputs=_ordering_inputs,
    respond=_respond_ordering,
    judge=_judge_ordering,
)

QUESTIONS = [MAF_LAYER, FLOW_COSTS, DEPENDENCY_PATTERN]

#: Proof-only exercises carry no points.
SELF_ASSESSED: dict[str, str] = {}
