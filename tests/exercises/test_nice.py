"""The graded questions of the NICE chapter: right answers earn every point, wrong ones
don't (the sample notebooks in tests/grading exercise the same questions end to end)."""

import math

import pytest
from torch import nn

from flowcourse.core import Transform
from flowcourse.coupling import AdditiveCoupling
from flowcourse.exercises import grade_answer, question

SEEDS = (0, 1, 2)


class MyAdditiveCoupling(Transform):
    """The book's solution."""

    def __init__(self, mask, conditioner):
        super().__init__()
        self.register_buffer("mask", mask.clone())
        self.conditioner = conditioner

    def shift(self, x):
        keep = self.mask.to(x.dtype)
        return (1 - keep) * self.conditioner(keep * x)

    def forward(self, x):
        return x + self.shift(x), x.new_zeros(x.shape[0])

    def inverse(self, z):
        return z - self.shift(z), z.new_zeros(z.shape[0])


class MaskNotApplied(MyAdditiveCoupling):  # the conditioner sees every value
    def shift(self, x):
        return (1 - self.mask.to(x.dtype)) * self.conditioner(x)


class KeptHalfShifted(MyAdditiveCoupling):  # the shift lands on the kept values
    def shift(self, x):
        keep = self.mask.to(x.dtype)
        return keep * self.conditioner(keep * x)


class WrongSignInverse(MyAdditiveCoupling):
    def inverse(self, z):
        return z + self.shift(z), z.new_zeros(z.shape[0])


class Identity(MyAdditiveCoupling):
    def forward(self, x):
        return x, x.new_zeros(x.shape[0])

    def inverse(self, z):
        return z, z.new_zeros(z.shape[0])


class Stub(MyAdditiveCoupling):
    def forward(self, x):
        raise NotImplementedError("nice.additive_coupling: write forward")

    def inverse(self, z):
        raise NotImplementedError("nice.additive_coupling: write inverse")


def gap(num_dims, sigma):
    return -num_dims / 2 - num_dims * math.log(sigma)


class Rescaled(nn.Module):
    def __init__(self, conditioner, log_scale, sign=-1.0):
        super().__init__()
        self.conditioner, self.log_scale, self.sign = conditioner, log_scale.detach(), sign

    def forward(self, u):
        return (self.sign * self.log_scale).exp() * self.conditioner(self.log_scale.exp() * u)


def move(scaling, coupling):
    return AdditiveCoupling(coupling.mask, Rescaled(coupling.conditioner, scaling.log_scale))


def move_with_wrong_sign(scaling, coupling):  # e^{+s} t(e^{s} u)
    conditioner = Rescaled(coupling.conditioner, scaling.log_scale, sign=1.0)
    return AdditiveCoupling(coupling.mask, conditioner)


RIGHT = {
    "nice.additive_coupling": MyAdditiveCoupling,
    "nice.nll_gap_bound": gap,
    "nice.scaling_to_end": move,
}

WRONG = {
    "nice.additive_coupling": [MaskNotApplied, KeptHalfShifted, WrongSignInverse, Identity],
    "nice.nll_gap_bound": [
        lambda d, s: -d / 2 - d * math.log(s**2),  # log sigma^2 for log sigma
        lambda d, s: d / 2 - d * math.log(s),  # sign of the D/2 term
        lambda d, s: 1.77,  # the worked example's number
    ],
    "nice.scaling_to_end": [move_with_wrong_sign, lambda scaling, coupling: coupling],
}


@pytest.mark.parametrize("question_id", list(RIGHT))
@pytest.mark.parametrize("seed", SEEDS)
def test_the_solution_earns_every_point(question_id, seed):
    score = grade_answer(question_id, RIGHT[question_id], seed=seed)
    assert score.points == question(question_id).points, score.report()


@pytest.mark.parametrize(
    "question_id, answer",
    [(q, answer) for q, answers in WRONG.items() for answer in answers],
)
def test_a_plausible_mistake_loses_points(question_id, answer):
    for seed in SEEDS:
        score = grade_answer(question_id, answer, seed=seed)
        assert score.points < question(question_id).points, score.report()
    if answer in (Identity, WRONG["nice.scaling_to_end"][1]) or question_id.endswith("bound"):
        assert score.points == 0, f"a trivial or wrong formula earns nothing:\n{score.report()}"


def test_the_stub_is_not_answered():
    for stub in (Stub, None, ...):
        score = grade_answer("nice.additive_coupling", stub, seed=0)
        assert score.points == 0 and not score.answered, score.report()
