"""The graded questions of the NICE chapter: right answers earn every point, wrong ones
don't (the sample notebooks in tests/grading exercise the same questions end to end)."""

import math

import pytest
from torch import nn

from flowcourse.core import Transform
from flowcourse.coupling import AdditiveCoupling
from tests.exercises.contract import assert_zero, contract_tests, raising_stub


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


CORRECT = {
    "nice.additive_coupling": MyAdditiveCoupling,
    "nice.nll_gap_bound": gap,
    "nice.scaling_to_end": move,
}
STUBS = {
    "nice.additive_coupling": [Stub],
    "nice.nll_gap_bound": [raising_stub("nice.nll_gap_bound")],
    "nice.scaling_to_end": [raising_stub("nice.scaling_to_end")],
}
WRONG_BOUNDS = [
    lambda d, s: -d / 2 - d * math.log(s**2),  # log sigma^2 for log sigma
    lambda d, s: d / 2 - d * math.log(s),  # sign of the D/2 term
    lambda d, s: 1.77,  # the worked example's number
]
WRONG = {
    "nice.additive_coupling": [MaskNotApplied, KeptHalfShifted, WrongSignInverse, Identity],
    "nice.nll_gap_bound": WRONG_BOUNDS,
    "nice.scaling_to_end": [move_with_wrong_sign, lambda scaling, coupling: coupling],
}
TRIVIAL = {
    "nice.additive_coupling": [Identity],
    "nice.scaling_to_end": [lambda scaling, coupling: coupling],
}

(
    test_the_solution_earns_every_point,
    test_a_stub_earns_nothing_and_is_not_answered,
    test_a_wrong_answer_loses_points,
    test_a_trivial_answer_earns_nothing,
) = contract_tests(CORRECT, STUBS, WRONG, TRIVIAL)


@pytest.mark.parametrize("wrong", WRONG_BOUNDS)
def test_a_wrong_bound_earns_nothing(wrong):
    assert_zero("nice.nll_gap_bound", wrong)
