"""The graded question of the neural spline flows chapter: right answers earn every point,
plausible mistakes lose points, trivial answers earn nothing."""

import torch

from flowcourse.exercises import grade_answer
from tests.exercises.contract import contract_tests, raising_stub


def rq_bin(x, x_left, x_right, y_left, y_right, derivative_left, derivative_right):
    """The book's solution."""
    width, height = x_right - x_left, y_right - y_left
    slope = height / width
    theta = (x - x_left) / width
    mix = theta * (1 - theta)
    denominator = slope + (derivative_right + derivative_left - 2 * slope) * mix
    y = y_left + height * (slope * theta**2 + derivative_left * mix) / denominator
    numerator = slope**2 * (
        derivative_right * theta**2 + 2 * slope * mix + derivative_left * (1 - theta) ** 2
    )
    return y, torch.log(numerator) - 2 * torch.log(denominator)


def swapped_derivatives(x, x_left, x_right, y_left, y_right, d_left, d_right):
    return rq_bin(x, x_left, x_right, y_left, y_right, d_right, d_left)


def theta_not_scaled(x, x_left, x_right, y_left, y_right, d_left, d_right):
    # theta = x - x_left, forgetting to divide by the width (right only for width 1)
    return rq_bin(x, x_left, x_left + 1.0, y_left, y_left + (y_right - y_left), d_left, d_right)


def denominator_not_squared(x, x_left, x_right, y_left, y_right, d_left, d_right):
    y, log_derivative = rq_bin(x, x_left, x_right, y_left, y_right, d_left, d_right)
    slope = (y_right - y_left) / (x_right - x_left)
    theta = (x - x_left) / (x_right - x_left)
    denominator = slope + (d_right + d_left - 2 * slope) * theta * (1 - theta)
    return y, log_derivative + torch.log(denominator)


def derivative_not_log(x, x_left, x_right, y_left, y_right, d_left, d_right):
    y, log_derivative = rq_bin(x, x_left, x_right, y_left, y_right, d_left, d_right)
    return y, log_derivative.exp()


def linear_piece(x, x_left, x_right, y_left, y_right, d_left, d_right):
    slope = (y_right - y_left) / (x_right - x_left)
    return y_left + slope * (x - x_left), torch.log(slope).expand_as(x)


def identity(x, *args):
    return x, torch.zeros_like(x)


def zeros(x, *args):
    return torch.zeros_like(x), torch.zeros_like(x)


(
    test_the_solution_earns_every_point,
    test_a_stub_earns_nothing_and_is_not_answered,
    test_a_wrong_answer_loses_points,
    test_a_trivial_answer_earns_nothing,
) = contract_tests(
    correct={"nsf.rq_bin": rq_bin},
    stubs={"nsf.rq_bin": [raising_stub("nsf.rq_bin")]},
    wrong={
        "nsf.rq_bin": [
            swapped_derivatives,
            theta_not_scaled,
            denominator_not_squared,
            derivative_not_log,
        ]
    },
    trivial={"nsf.rq_bin": [identity, zeros, linear_piece]},
)


def test_a_right_value_with_a_wrong_log_derivative_earns_half_and_is_explained():
    score = grade_answer("nsf.rq_bin", denominator_not_squared, seed=0)
    assert score.points == 1.0, score.report()
    consistency = [r for r in score.results if r.name == "consistent with your y"]
    assert consistency and not consistency[0].passed, score.report()


def test_a_pair_is_required():
    score = grade_answer("nsf.rq_bin", lambda *args: rq_bin(*args)[0], seed=0)
    assert score.points == 0 and score.answered
    assert "expected a pair" in score.report()


def test_float32_answers_are_refused_with_an_explanation():
    def single(*args):
        y, log_derivative = rq_bin(*args)
        return y.float(), log_derivative.float()

    score = grade_answer("nsf.rq_bin", single, seed=0)
    assert score.points == 0 and "dtype" in score.report()
