"""The graded questions of the MADE chapter: right answers earn every point, wrong ones don't."""

import torch

from flowcourse.exercises import grade_answer
from tests.exercises.contract import SEEDS, assert_full, assert_stub, points, raising_stub


def made_masks(order, hidden_degrees_per_layer, output_multiplier=1, strict=True):
    """The chapter's mask builder (with a switch for the output comparison)."""
    masks, previous = [], order
    for degrees in hidden_degrees_per_layer:
        masks.append((degrees[:, None] >= previous[None, :]).float())
        previous = degrees
    outputs = order.repeat(output_multiplier)
    last = outputs[:, None] > previous[None, :] if strict else outputs[:, None] >= previous[None, :]
    masks.append(last.float())
    return masks


def random_degree_masks(order, hidden_widths, output_multiplier, generator):
    """The book's solution."""
    features = len(order)
    degrees, lowest = [], int(order.min())
    for width in hidden_widths:
        degrees.append(torch.randint(lowest, features, (width,), generator=generator))
        lowest = int(degrees[-1].min())
    return made_masks(order, degrees, output_multiplier), degrees


def cyclic(order, hidden_widths, output_multiplier, generator):
    """The package's deterministic degrees: correct masks, but not drawn at random."""
    degrees = [torch.arange(width) % (len(order) - 1) + 1 for width in hidden_widths]
    return made_masks(order, degrees, output_multiplier), degrees


def always_from_one(order, hidden_widths, output_multiplier, generator):
    """Every layer drawn from [1, D-1], ignoring the smallest degree of the layer below."""
    degrees = [torch.randint(1, len(order), (w,), generator=generator) for w in hidden_widths]
    return made_masks(order, degrees, output_multiplier), degrees


def upper_off_by_one(order, hidden_widths, output_multiplier, generator):
    """Degrees drawn from [lowest, D-2]: D-1 is never drawn."""
    features = len(order)
    degrees, lowest = [], 1
    for width in hidden_widths:
        degrees.append(torch.randint(lowest, features - 1, (width,), generator=generator))
        lowest = int(degrees[-1].min())
    return made_masks(order, degrees, output_multiplier), degrees


def non_strict_outputs(order, hidden_widths, output_multiplier, generator):
    masks, degrees = random_degree_masks(order, hidden_widths, output_multiplier, generator)
    return made_masks(order, degrees, output_multiplier, strict=False), degrees


def interleaved_outputs(order, hidden_widths, output_multiplier, generator):
    masks, degrees = random_degree_masks(order, hidden_widths, output_multiplier, generator)
    outputs = order.repeat_interleave(output_multiplier)
    masks[-1] = (outputs[:, None] > degrees[-1][None, :]).float()
    return masks, degrees


def zeros(order, hidden_widths, output_multiplier, generator):
    masks, degrees = random_degree_masks(order, hidden_widths, output_multiplier, generator)
    return [torch.zeros_like(mask) for mask in masks], degrees


def test_random_degree_masks():
    question_id = "made.random_degree_masks"
    assert_full(question_id, random_degree_masks)
    assert_stub(question_id, raising_stub(question_id))
    assert points(question_id, cyclic) == 2  # right masks, not random
    assert points(question_id, always_from_one) == 1  # degrees below the layer below's
    assert points(question_id, upper_off_by_one) == 2  # never draws D - 1
    for wrong in (non_strict_outputs, interleaved_outputs, zeros):
        assert points(question_id, wrong) == 0, wrong.__name__
    masks_only = grade_answer(question_id, lambda *args: random_degree_masks(*args)[0], seed=0)
    assert masks_only.points == 0 and "(masks, degrees)" in masks_only.report()


def made_connection_counts(num_inputs, num_hidden):
    return {
        "kept_weights": num_hidden * num_inputs,
        "connected_pairs": num_inputs * (num_inputs - 1) // 2,
    }


def test_connection_counts():
    question_id = "made.connection_counts"
    assert_full(question_id, made_connection_counts)
    assert_stub(question_id, raising_stub(question_id))

    def unmasked(d, h):
        return made_connection_counts(d, h) | {"kept_weights": 2 * h * d}

    def with_diagonal(d, h):
        return made_connection_counts(d, h) | {"connected_pairs": d * (d + 1) // 2}

    def dense(d, h):
        return made_connection_counts(d, h) | {"connected_pairs": d * d}

    for wrong in (unmasked, with_diagonal, dense):
        assert points(question_id, wrong) == 1, wrong
    assert points(question_id, lambda d, h: {"kept_weights": 500, "connected_pairs": 45}) == 0
    assert points(question_id, lambda d, h: (h * d, d * (d - 1) // 2)) == 0  # not a dict


def outputs_seeing_themselves(order, hidden_degrees):
    """The solution: a path from input i to output i through units of degree order[i]."""
    masks = made_masks(order, hidden_degrees, strict=False)
    paths = masks[0]
    for mask in masks[1:]:
        paths = mask @ paths
    return paths.diagonal() > 0


def test_outputs_seeing_themselves():
    question_id = "made.outputs_seeing_themselves"
    assert_full(question_id, outputs_seeing_themselves)
    assert_stub(question_id, raising_stub(question_id))

    def by_formula(order, hidden_degrees):  # the same rule, written out
        return torch.stack(
            [torch.tensor([bool((d == o).any()) for d in hidden_degrees]).all() for o in order]
        )

    assert points(question_id, by_formula) == 2

    def all_but_last(order, hidden_degrees):
        return order < len(order)

    def last_layer_only(order, hidden_degrees):
        return (hidden_degrees[-1][None, :] == order[:, None]).any(dim=1)

    def by_position(order, hidden_degrees):  # entry p - 1 for position p, not feature i
        return outputs_seeing_themselves(order, hidden_degrees)[torch.argsort(order)]

    def strict(order, hidden_degrees):
        return torch.zeros(len(order), dtype=torch.bool)

    def everyone(order, hidden_degrees):
        return torch.ones(len(order), dtype=torch.bool)

    for wrong in (all_but_last, last_layer_only, by_position, strict, everyone):
        for seed in SEEDS:
            assert points(question_id, wrong, seed=seed) == 0, wrong.__name__
