r"""Graded questions of the chapter *MADE: masked autoencoders for distribution estimation*.

- ``made.random_degree_masks`` (exercise ``made-ex-random-degrees``): masks from hidden
  degrees drawn as in Germain et al. (2015), uniformly between the smallest degree of the
  layer below and :math:`D - 1`. The draw is random, so there is no reference output: the
  grader checks that every draw is exactly the MADE masks of the returned degrees, that
  the degrees lie in the allowed range, and, over many generator seeds, that they are
  spread over that range.
- ``made.connection_counts`` (exercise ``made-ex-count``): the :math:`H D` weights kept
  by a one-hidden-layer MADE and the :math:`D (D - 1)/2` connected (input, output) pairs.
- ``made.outputs_seeing_themselves`` (exercise ``made-ex-strict``): which outputs see
  their own input once the output mask uses :math:`\ge` instead of :math:`>`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from flowcourse.exercises.question import Question, Result, attempt, compare, diagnostic

__all__ = ["QUESTIONS", "SELF_ASSESSED"]


def _randint(generator: torch.Generator, low: int, high: int) -> int:
    """An integer in ``[low, high]`` (both included)."""
    return int(torch.randint(low, high + 1, (1,), generator=generator))


def _random_order(generator: torch.Generator, features: int) -> Tensor:
    return torch.randperm(features, generator=generator) + 1


def _masks_of(order: Tensor, degrees: list[Tensor], multiplier: int, strict: bool = True):
    """The MADE masks (bool, (out, in)) of the given hidden degrees; ``strict=False``
    builds the output mask with >= instead of >."""
    masks, previous = [], order
    for layer in degrees:
        masks.append(layer[:, None] >= previous[None, :])
        previous = layer
    outputs = order.repeat(multiplier)
    last = outputs[:, None] > previous[None, :] if strict else outputs[:, None] >= previous[None, :]
    masks.append(last)
    return masks


# --- made.random_degree_masks -------------------------------------------------------

_DRAWS = 200


def _random_degree_inputs(generator: torch.Generator) -> dict[str, Any]:
    narrow_features = _randint(generator, 4, 7)
    deep_features = _randint(generator, 3, 6)
    configs = [
        {  # a narrow first layer: its smallest degree is often above 1
            "order": _random_order(generator, narrow_features),
            "widths": [_randint(generator, 2, 3), _randint(generator, narrow_features, 10)],
            "multiplier": _randint(generator, 1, 3),
        },
        {
            "order": _random_order(generator, deep_features),
            "widths": [_randint(generator, 4, 10) for _ in range(3)],
            "multiplier": _randint(generator, 1, 3),
        },
    ]
    for config in configs:
        config["seeds"] = torch.randint(0, 2**31 - 1, (_DRAWS,), generator=generator).tolist()
    return {"configs": configs}


def _draw(answer: Any, config: dict[str, Any], seed: int) -> Any:
    generator = torch.Generator().manual_seed(int(seed))
    return answer(config["order"].clone(), list(config["widths"]), config["multiplier"], generator)


def _respond_random_degrees(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for index, config in enumerate(inputs["configs"]):
        attempt(
            outputs,
            f"draws_{index}",
            lambda c=config: [_draw(answer, c, seed) for seed in c["seeds"]],
        )
        attempt(outputs, f"repeat_{index}", lambda c=config: _draw(answer, c, c["seeds"][0]))
    return outputs


def _parse_draw(draw: Any, config: dict[str, Any]) -> tuple[list[Tensor], list[Tensor]]:
    """(masks, degrees) of one draw, checked for types and shapes; raises ValueError."""
    widths = list(config["widths"])
    features = config["order"].numel()
    if not isinstance(draw, list) or len(draw) != 2:
        raise ValueError("expected the pair (masks, degrees)")
    masks, degrees = draw
    if not isinstance(masks, list) or len(masks) != len(widths) + 1:
        raise ValueError(f"expected a list of {len(widths) + 1} masks")
    if not isinstance(degrees, list) or len(degrees) != len(widths):
        raise ValueError(f"expected a list of {len(widths)} tensors of hidden degrees")
    sizes = [features, *widths, config["multiplier"] * features]
    parsed_masks = []
    for index, mask in enumerate(masks):
        shape = (sizes[index + 1], sizes[index])
        if not isinstance(mask, Tensor) or tuple(mask.shape) != shape:
            got = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(f"expected mask {index} of shape {shape}, got {got}")
        parsed_masks.append(mask.to(torch.float64) != 0)
    parsed_degrees = []
    for index, layer in enumerate(degrees):
        layer = torch.as_tensor(layer)
        if tuple(layer.shape) != (widths[index],):
            raise ValueError(
                f"expected hidden degrees {index} of shape ({widths[index]},), "
                f"got {tuple(layer.shape)}"
            )
        as_float = layer.to(torch.float64)
        if not torch.equal(as_float, as_float.round()):
            raise ValueError(f"expected integer hidden degrees, got {layer.tolist()}")
        parsed_degrees.append(as_float.round().long())
    return parsed_masks, parsed_degrees


def _out_of_range(degrees: list[Tensor], features: int) -> str:
    """Why the degrees break the paper's rule, or ''."""
    lowest = 1  # the smallest input degree
    for index, layer in enumerate(degrees):
        if bool((layer < lowest).any()) or bool((layer > features - 1).any()):
            return (
                f"hidden layer {index} has degrees {layer.tolist()}, outside "
                f"[{lowest}, {features - 1}] (the smallest degree of the layer below, D - 1)"
            )
        lowest = int(layer.min())
    return ""


def _spread(parsed: list[list[Tensor]], features: int) -> str:
    """Why the pooled degrees of each layer do not look uniform on their range, or ''."""
    first = torch.cat([degrees[0] for degrees in parsed])
    values = features - 1
    counts = torch.bincount(first - 1, minlength=values)[:values].to(torch.float64)
    expected = first.numel() / values
    if bool((counts < 0.5 * expected).any()) or bool((counts > 1.5 * expected).any()):
        return (
            f"over {len(parsed)} draws the first hidden layer's degrees 1..{values} came "
            f"{counts.long().tolist()} times; uniform draws give about {expected:.0f} each"
        )
    for index in range(1, len(parsed[0])):
        pooled = torch.cat([degrees[index] for degrees in parsed])
        if int(pooled.max()) != features - 1:
            return (
                f"over {len(parsed)} draws hidden layer {index} never took the degree "
                f"D - 1 = {features - 1}"
            )
        if not any(
            int(degrees[index].min()) == int(degrees[index - 1].min()) for degrees in parsed
        ):
            return (
                f"over {len(parsed)} draws hidden layer {index} never took the smallest degree "
                "of the layer below, the low end of its range"
            )
    return ""


def _judge_random_degrees(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    structure, in_range, spread = "", "", ""
    notes = []
    for index, config in enumerate(inputs["configs"]):
        order, multiplier = config["order"], config["multiplier"]
        features = order.numel()
        label = (
            f"order {order.tolist()}, hidden widths {list(config['widths'])}, "
            f"output_multiplier {multiplier}"
        )
        if f"draws_{index}:error" in outputs:
            structure = structure or f"{label}: raised {outputs[f'draws_{index}:error']}"
            continue
        parsed = []
        for draw in outputs.get(f"draws_{index}", []):
            try:
                masks, degrees = _parse_draw(draw, config)
            except ValueError as error:
                structure = structure or f"{label}: {error}"
                break
            expected = _masks_of(order, degrees, multiplier)
            for layer, (mine, reference) in enumerate(zip(masks, expected, strict=True)):
                if not torch.equal(mine, reference):
                    kind = "output" if layer == len(masks) - 1 else f"layer {layer}"
                    rule = "order[i] > m(k)" if layer == len(masks) - 1 else "m(k') >= m(k)"
                    structure = structure or (
                        f"{label}: the {kind} mask is not 1[{rule}] for your hidden degrees "
                        f"{[d.tolist() for d in degrees]}"
                    )
                    break
            why = _out_of_range(degrees, features)
            if why and not in_range:
                in_range = f"{label}: {why}"
            parsed.append(degrees)
        if structure:
            continue
        if not parsed:
            structure = f"{label}: no draws returned"
            continue
        first = parsed[0]
        if all(all(torch.equal(a, b) for a, b in zip(first, d, strict=True)) for d in parsed):
            spread = spread or (
                f"{label}: the same degrees for all {len(parsed)} generator seeds; draw them "
                "with the generator"
            )
        why = _spread(parsed, features)
        if why and not spread:
            spread = f"{label}: {why}"
        repeat = outputs.get(f"repeat_{index}")
        if repeat is not None:
            try:
                _, again = _parse_draw(repeat, config)
                same = all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
            except ValueError:
                same = False
            message = (
                "the same generator seed gives the same degrees"
                if same
                else "the same generator seed gave different degrees: draw with `generator`"
            )
            notes.append(diagnostic(f"reproducible from the generator ({index})", same, message))
    ok_structure = not structure
    ok_range = ok_structure and not in_range
    ok_spread = ok_range and not spread
    results = [
        Result(
            "masks of the degrees",
            ok_structure,
            1.0 if ok_structure else 0.0,
            1.0,
            "every draw is exactly the MADE masks of its degrees (>= hidden, > output)"
            if ok_structure
            else structure,
        ),
        Result(
            "degrees in the paper's range",
            ok_range,
            1.0 if ok_range else 0.0,
            1.0,
            "every hidden degree lies in [smallest degree of the layer below, D - 1]"
            if ok_range
            else (in_range or "earns points only with correct masks"),
        ),
        Result(
            "degrees drawn at random",
            ok_spread,
            1.0 if ok_spread else 0.0,
            1.0,
            "over the generator seeds the degrees spread over their range"
            if ok_spread
            else (spread or "earns points only with correct masks and degrees in range"),
        ),
    ]
    return results + notes


RANDOM_DEGREE_MASKS = Question(
    id="made.random_degree_masks",
    exercise="made-ex-random-degrees",
    title="The paper's random degrees",
    answer_name="random_degree_masks",
    kind="function",
    contract=(
        "random_degree_masks(order, hidden_widths, output_multiplier, generator) -> "
        "(masks, degrees). order: long tensor (D,), a permutation of 1..D; hidden_widths: "
        "list of ints (any width >= 1); generator: torch.Generator to draw with. degrees: "
        "one integer tensor (width,) per hidden layer, each degree drawn uniformly from "
        "[smallest degree of the layer below, D - 1] (the inputs' smallest degree is 1). "
        "masks: the MADE masks (out, in) of these degrees, 1[m(k') >= m(k)] into hidden layers "
        "and 1[order[i] > m(k)] into the output_multiplier * D outputs (order repeated)."
    ),
    points=3.0,
    make_inputs=_random_degree_inputs,
    respond=_respond_random_degrees,
    judge=_judge_random_degrees,
    time_limit_s=120.0,
)


# --- made.connection_counts ---------------------------------------------------------

_COUNT_CASES = 6


def _count_inputs(generator: torch.Generator) -> dict[str, Any]:
    return {
        "cases": [
            [_randint(generator, 2, 40), _randint(generator, 1, 200)] for _ in range(_COUNT_CASES)
        ]
    }


def _respond_counts(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for key in ("kept_weights", "connected_pairs"):
        attempt(
            outputs,
            key,
            lambda k=key: [float(answer(d, h)[k]) for d, h in inputs["cases"]],
        )
    return outputs


def _judge_counts(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    cases = inputs["cases"]
    where = ", ".join(f"(D={d}, H={h})" for d, h in cases)
    kept = torch.tensor([float(h * d) for d, h in cases], dtype=torch.float64)
    pairs = torch.tensor([float(d * (d - 1) // 2) for d, _ in cases], dtype=torch.float64)
    return [
        compare(
            "weights kept by the masks",
            outputs,
            "kept_weights",
            kept,
            1.0,
            f"kept_weights at {where}",
            1e-6,
            0.0,
        ),
        compare(
            "connected (input, output) pairs",
            outputs,
            "connected_pairs",
            pairs,
            1.0,
            f"connected_pairs at {where}",
            1e-6,
            0.0,
        ),
    ]


CONNECTION_COUNTS = Question(
    id="made.connection_counts",
    exercise="made-ex-count",
    title="Counting connections",
    answer_name="made_connection_counts",
    kind="function",
    contract=(
        "made_connection_counts(num_inputs, num_hidden) -> dict with 'kept_weights': the "
        "number of weights the two masks of a one-hidden-layer MADE (D inputs, H hidden units "
        "with any degrees in 1..D-1, one output per feature) keep, and 'connected_pairs': the "
        "number of (input, output) pairs connected by at least one path when every hidden "
        "layer has every degree 1..D-1 (for any ordering). Integers."
    ),
    points=2.0,
    make_inputs=_count_inputs,
    respond=_respond_counts,
    judge=_judge_counts,
)


# --- made.outputs_seeing_themselves -------------------------------------------------

_STRICT_CASES = 5


def _strict_case(generator: torch.Generator) -> dict[str, Any]:
    features = _randint(generator, 3, 7)
    layers = _randint(generator, 1, 3)
    degrees = [
        torch.randint(1, features, (_randint(generator, 2, 2 * features),), generator=generator)
        for _ in range(layers)
    ]
    return {"order": _random_order(generator, features), "degrees": degrees}


def _sees_itself(order: Tensor, degrees: list[Tensor]) -> Tensor:
    masks = _masks_of(order, degrees, 1, strict=False)
    paths = masks[0].to(torch.float64)
    for mask in masks[1:]:
        paths = mask.to(torch.float64) @ paths
    return paths.diagonal() > 0


def _strict_inputs(generator: torch.Generator) -> dict[str, Any]:
    while True:
        cases = [_strict_case(generator) for _ in range(_STRICT_CASES)]
        answers = [_sees_itself(case["order"], case["degrees"]) for case in cases]
        # Plausible wrong rules must fail somewhere: "all but the last position", only the
        # last hidden layer's degrees, entries by position instead of by feature.
        wrong_rules = [
            [case["order"] < case["order"].numel() for case in cases],
            [(c["degrees"][-1][None, :] == c["order"][:, None]).any(dim=1) for c in cases],
            [a[torch.argsort(c["order"])] for a, c in zip(answers, cases, strict=True)],
        ]
        caught = all(
            any(not torch.equal(a, b) for a, b in zip(answers, rule, strict=True))
            for rule in wrong_rules
        )
        values = torch.cat(answers)
        if caught and bool(values.any()) and not bool(values.all()):
            return {"cases": cases}


def _respond_strict(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for index, case in enumerate(inputs["cases"]):
        attempt(
            outputs,
            f"sees_{index}",
            lambda c=case: (
                torch.as_tensor(answer(c["order"].clone(), [d.clone() for d in c["degrees"]])).to(
                    torch.float64
                )
                != 0
            ),
        )
    return outputs


def _judge_strict(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    cases = []
    for index, case in enumerate(inputs["cases"]):
        order, degrees = case["order"], case["degrees"]
        expected = _sees_itself(order, degrees).to(torch.float64)
        what = (
            f"order {order.tolist()}, hidden degrees {[d.tolist() for d in degrees]}: "
            "which outputs see their own input"
        )
        key = f"sees_{index}"
        if isinstance(outputs.get(key), Tensor):
            outputs = outputs | {key: outputs[key].to(torch.float64)}
        cases.append(compare(f"case {index}", outputs, key, expected, 0.0, what, 0.0, 0.0))
    failed = [case for case in cases if not case.passed]
    message = (
        f"all {len(cases)} cases agree"
        if not failed
        else f"{len(failed)} of {len(cases)} cases disagree; {failed[0].name}: {failed[0].message}"
    )
    # One graded result, earned only when every case agrees: a constant answer (all
    # False, all True) can match one case by chance.
    graded = Result("outputs that see themselves", not failed, 0.0 if failed else 2.0, 2.0, message)
    return [graded, *(diagnostic(case.name, case.passed, case.message) for case in cases)]


OUTPUTS_SEEING_THEMSELVES = Question(
    id="made.outputs_seeing_themselves",
    exercise="made-ex-strict",
    title="Which outputs see themselves with >=",
    answer_name="outputs_seeing_themselves",
    kind="function",
    contract=(
        "outputs_seeing_themselves(order, hidden_degrees) -> bool tensor (D,). order: long "
        "tensor (D,), a permutation of 1..D; hidden_degrees: list of long tensors, the degrees "
        "of each hidden layer (any values in 1..D-1). Entry i is True when output i has a path "
        "from input i once the output mask is built with >= instead of > (hidden masks "
        "unchanged)."
    ),
    points=2.0,
    make_inputs=_strict_inputs,
    respond=_respond_strict,
    judge=_judge_strict,
)

QUESTIONS = [RANDOM_DEGREE_MASKS, CONNECTION_COUNTS, OUTPUTS_SEEING_THEMSELVES]

#: Proof-only exercises carry no points.
SELF_ASSESSED: dict[str, str] = {}
