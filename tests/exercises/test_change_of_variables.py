"""The graded questions of the chapter *The change of variables*: a correct answer earns
every point, the stub and trivial or typical wrong answers do not."""

import math

import pytest
import torch
from torch import nn

from flowcourse.core import Transform
from flowcourse.exercises import grade_answer
from tests.exercises.contract import (
    assert_full,
    assert_loses,
    assert_stub,
    assert_zero,
)

# --- change_of_variables.affine_gaussian --------------------------------------------


def test_affine_gaussian():
    qid = "change_of_variables.affine_gaussian"

    def correct(x, mu, sigma):
        return torch.distributions.Normal(mu, sigma).log_prob(x)

    assert_full(qid, correct)

    def stub(x, mu, sigma):
        raise NotImplementedError("change_of_variables.affine_gaussian: your formula")

    assert_stub(qid, stub)

    def standard(x, mu, sigma):
        return -0.5 * ((x - mu) / sigma) ** 2 - 0.5 * math.log(2 * math.pi)

    assert_zero(qid, standard)  # forgot the log-determinant
    assert_zero(qid, lambda x, mu, sigma: standard(x, mu, sigma) + math.log(sigma))  # sign
    assert_zero(qid, lambda x, mu, sigma: standard(x, mu, sigma) - 2 * math.log(sigma))
    assert_zero(qid, lambda x, mu, sigma: torch.zeros_like(x))


# --- change_of_variables.elementwise_affine -----------------------------------------


class ElementwiseAffine(Transform):
    def __init__(self, features):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(features))
        self.shift = nn.Parameter(torch.zeros(features))

    def forward(self, x):
        return x * self.log_scale.exp() + self.shift, self.log_scale.sum().expand(len(x))

    def inverse(self, z):
        x = (z - self.shift) * (-self.log_scale).exp()
        return x, -self.log_scale.sum().expand(len(z))


class Stub(ElementwiseAffine):
    def forward(self, x):
        raise NotImplementedError("change_of_variables.elementwise_affine: write forward")

    def inverse(self, z):
        raise NotImplementedError("change_of_variables.elementwise_affine: write inverse")


class WrongInverseScale(ElementwiseAffine):
    def inverse(self, z):  # exp(s) instead of exp(-s)
        return (z - self.shift) * self.log_scale.exp(), -self.log_scale.sum().expand(len(z))


class WrongSign(ElementwiseAffine):
    def forward(self, x):  # log-determinant of the inverse
        return x * self.log_scale.exp() + self.shift, -self.log_scale.sum().expand(len(x))


class ShiftFirst(ElementwiseAffine):
    def forward(self, x):  # (x + t) e^s: another map
        return (x + self.shift) * self.log_scale.exp(), self.log_scale.sum().expand(len(x))

    def inverse(self, z):
        x = z * (-self.log_scale).exp() - self.shift
        return x, -self.log_scale.sum().expand(len(z))


class Identity(ElementwiseAffine):
    def forward(self, x):
        return x, x.new_zeros(len(x))

    def inverse(self, z):
        return z, z.new_zeros(len(z))


class OtherNames(Transform):
    def __init__(self, features):
        super().__init__()
        self.s = nn.Parameter(torch.zeros(features))
        self.t = nn.Parameter(torch.zeros(features))


def test_elementwise_affine():
    qid = "change_of_variables.elementwise_affine"
    assert_full(qid, ElementwiseAffine)
    assert_stub(qid, Stub)
    for wrong in (WrongInverseScale, WrongSign, ShiftFirst):
        assert_loses(qid, wrong)
    assert_zero(qid, ShiftFirst)
    assert_zero(qid, Identity)
    assert_zero(qid, OtherNames)
    score = grade_answer(qid, WrongInverseScale, seed=0)
    assert score.points == pytest.approx(1.5), score.report()
    assert "FAIL invertible" in score.report()
    score = grade_answer(qid, WrongSign, seed=0)
    assert score.points == pytest.approx(2.5), score.report()
    assert "FAIL log-determinant matches autograd" in score.report()


# --- change_of_variables.noise_side_log_prob ----------------------------------------


def test_noise_side_log_prob():
    qid = "change_of_variables.noise_side_log_prob"

    def correct(flow, z):
        x, log_abs_det = flow.transform.inverse(z)
        return x, flow.base.log_prob(z) - log_abs_det

    assert_full(qid, correct)

    def stub(flow, z):
        raise NotImplementedError("change_of_variables.noise_side_log_prob: your formula")

    assert_stub(qid, stub)

    def plus(flow, z):  # the log-determinant added, not subtracted
        x, log_abs_det = flow.transform.inverse(z)
        return x, flow.base.log_prob(z) + log_abs_det

    def no_log_det(flow, z):
        x, _ = flow.transform.inverse(z)
        return x, flow.base.log_prob(z)

    def forward_direction(flow, z):  # runs the flow the wrong way
        x, log_abs_det = flow.transform(z)
        return x, flow.base.log_prob(z) + log_abs_det

    for wrong in (plus, no_log_det):
        score = grade_answer(qid, wrong, seed=0)
        assert score.points == pytest.approx(1.0), score.report()
        assert_loses(qid, wrong)
    assert_zero(qid, forward_direction)
    assert_zero(qid, lambda flow, z: (z, flow.base.log_prob(z)))  # trivial
    assert_zero(qid, lambda flow, z: (z, flow.log_prob(z)))


# --- change_of_variables.linear_flow_nll --------------------------------------------


def test_linear_flow_nll():
    qid = "change_of_variables.linear_flow_nll"

    def correct(radius, std):
        variance = radius**2 / 2 + std**2
        return 0.5 * math.log(((2 * math.pi * math.e) ** 2) * variance**2)

    assert_full(qid, correct)

    def stub(radius, std):
        raise NotImplementedError("change_of_variables.linear_flow_nll: your formula")

    assert_stub(qid, stub)
    assert_zero(qid, lambda r, s: math.log(2 * math.pi * math.e * r**2 / 2))  # no std
    assert_zero(qid, lambda r, s: math.log(2 * math.pi * math.e * (r**2 + s**2)))
    assert_zero(qid, lambda r, s: 0.5 * math.log(2 * math.pi * math.e * (r**2 / 2 + s**2)))
    assert_zero(qid, lambda r, s: math.log(2 * math.pi * (r**2 / 2 + s**2)))  # no e
    assert_zero(qid, lambda r, s: 4.0)  # the value from the text


def test_noise_side_log_prob_must_not_run_forward():
    qid = "change_of_variables.noise_side_log_prob"

    def via_forward(flow, z):
        x, _ = flow.transform.inverse(z)
        return x, flow.log_prob(x)

    score = grade_answer(qid, via_forward, seed=0)
    assert score.points == 0, score.report()
    assert "must not run the forward pass" in score.report()
