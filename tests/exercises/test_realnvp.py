"""The graded questions of the chapter *RealNVP*: a correct answer earns every point,
the stub and trivial or typical wrong answers do not."""

import math

import pytest
import torch

from flowcourse.core import Transform
from flowcourse.coupling import soft_clamp
from flowcourse.exercises import grade_answer
from tests.exercises.contract import (
    assert_full,
    assert_stub,
    assert_zero,
)

# --- realnvp.affine_inverse ---------------------------------------------------------


class MyAffineCoupling(Transform):
    """The exercise's class, forward as given."""

    def __init__(self, mask, conditioner, log_scale_bound=3.0):
        super().__init__()
        self.register_buffer("mask", mask)
        self.conditioner = conditioner
        self.log_scale_bound = log_scale_bound

    def forward(self, x):
        keep = self.mask.to(x.dtype)
        shift, raw = self.conditioner(x * keep).chunk(2, dim=1)
        log_scale = soft_clamp(raw, self.log_scale_bound) * (1 - keep)
        z = x * log_scale.exp() + shift * (1 - keep)
        return z, log_scale.flatten(1).sum(1)

    def inverse(self, z):
        raise NotImplementedError("realnvp.affine_inverse: write inverse")


def _make(inverse_body):
    return type("Answer", (MyAffineCoupling,), {"inverse": inverse_body})


def _parts(layer, z, masked_input=True):
    keep = layer.mask.to(z.dtype)
    shift, raw = layer.conditioner(z * keep if masked_input else z).chunk(2, dim=1)
    return keep, shift, raw


def correct_inverse(self, z):
    keep, shift, raw = _parts(self, z)
    log_scale = soft_clamp(raw, self.log_scale_bound) * (1 - keep)
    x = (z - shift * (1 - keep)) * (-log_scale).exp()
    return x, -log_scale.flatten(1).sum(1)


def shift_not_masked(self, z):
    keep, shift, raw = _parts(self, z)
    log_scale = soft_clamp(raw, self.log_scale_bound) * (1 - keep)
    return (z - shift) * (-log_scale).exp(), -log_scale.flatten(1).sum(1)


def wrong_log_det_sign(self, z):
    x, log_abs_det = correct_inverse(self, z)
    return x, -log_abs_det


def exp_plus(self, z):
    keep, shift, raw = _parts(self, z)
    log_scale = soft_clamp(raw, self.log_scale_bound) * (1 - keep)
    x = (z - shift * (1 - keep)) * log_scale.exp()
    return x, -log_scale.flatten(1).sum(1)


def no_clamp(self, z):
    keep, shift, raw = _parts(self, z)
    log_scale = raw * (1 - keep)
    x = (z - shift * (1 - keep)) * (-log_scale).exp()
    return x, -log_scale.flatten(1).sum(1)


def unmasked_conditioner_input(self, z):
    keep, shift, raw = _parts(self, z, masked_input=False)
    log_scale = soft_clamp(raw, self.log_scale_bound) * (1 - keep)
    x = (z - shift * (1 - keep)) * (-log_scale).exp()
    return x, -log_scale.flatten(1).sum(1)


def identity(self, z):
    return z, z.new_zeros(z.shape[0])


def test_affine_inverse():
    qid = "realnvp.affine_inverse"
    assert_full(qid, _make(correct_inverse))
    assert_stub(qid, MyAffineCoupling)
    for wrong in (shift_not_masked, exp_plus, no_clamp, unmasked_conditioner_input, identity):
        assert_zero(qid, _make(wrong))
    score = grade_answer(qid, _make(wrong_log_det_sign), seed=0)
    assert score.points == pytest.approx(2.0), score.report()
    assert "FAIL log-determinant matches autograd" in score.report()
    score = grade_answer(qid, _make(shift_not_masked), seed=0)
    assert "FAIL invertible" in score.report()


# --- realnvp.bits_per_dim -----------------------------------------------------------


def my_bits_per_dim(log_prob_y, num_dims, num_levels):
    return (num_dims * math.log(num_levels) - log_prob_y) / (num_dims * math.log(2))


def test_bits_per_dim():
    qid = "realnvp.bits_per_dim"
    assert_full(qid, my_bits_per_dim)

    def stub(log_prob_y, num_dims, num_levels):
        raise NotImplementedError("realnvp.bits_per_dim: your formula")

    assert_stub(qid, stub)
    assert_zero(qid, lambda lp, d, levels: -lp / (d * math.log(2)))  # no -D log L
    assert_zero(qid, lambda lp, d, levels: (d * math.log(levels) - lp) / d)  # nats
    assert_zero(qid, lambda lp, d, levels: (d * math.log(levels) + lp) / (d * math.log(2)))
    assert_zero(qid, lambda lp, d, levels: (math.log(levels) - lp) / (d * math.log(2)))
    assert_zero(qid, lambda lp, d, levels: torch.zeros_like(lp))
    assert_zero(qid, lambda lp, d, levels: (d * math.log(levels) - lp.float()) / (d * math.log(2)))


# --- realnvp.bits_from_logit --------------------------------------------------------


def test_bits_from_logit():
    qid = "realnvp.bits_from_logit"
    assert_full(qid, lambda lps, ld, d, levels: my_bits_per_dim(lps + ld, d, levels))

    def stub(log_prob_s, log_det, num_dims, num_levels):
        raise NotImplementedError("realnvp.bits_from_logit: your formula")

    assert_stub(qid, stub)
    assert_zero(qid, lambda lps, ld, d, levels: -lps / (d * math.log(2)))  # the colleague
    assert_zero(qid, lambda lps, ld, d, levels: my_bits_per_dim(lps, d, levels))  # no log-det
    assert_zero(qid, lambda lps, ld, d, levels: my_bits_per_dim(lps - ld, d, levels))
    assert_zero(qid, lambda lps, ld, d, levels: -(lps + ld) / (d * math.log(2)))
    assert_zero(qid, lambda lps, ld, d, levels: torch.zeros_like(lps))


# --- realnvp.clamp_loss -------------------------------------------------------------


def _loss(bound, num_layers, data_std, count=None, gaussian=True):
    saturated = math.ceil(num_layers / 2) if count is None else count(num_layers)
    entropy = 0.5 * math.log(2 * math.pi * math.e * data_std**2)
    return entropy + gaussian * 0.5 * math.log(2 * math.pi) - saturated * bound


def test_clamp_loss():
    qid = "realnvp.clamp_loss"
    assert_full(qid, _loss)

    def stub(bound, num_layers, data_std):
        raise NotImplementedError("realnvp.clamp_loss: your formula")

    assert_stub(qid, stub)
    assert_zero(qid, lambda b, n, s: _loss(b, n, s, count=lambda n: n))  # every layer
    assert_zero(qid, lambda b, n, s: _loss(b, n, s, count=lambda n: n // 2))  # rounded down
    assert_zero(qid, lambda b, n, s: _loss(b, n, s, gaussian=False))  # forgot z_2 = 0
    assert_zero(qid, lambda b, n, s: _loss(b, n, s) + 2 * math.ceil(n / 2) * b)  # +b
    assert_zero(qid, lambda b, n, s: _loss(b, 4, 1.0))  # the chapter's case only
    assert_zero(qid, lambda b, n, s: -3.66)
