"""The graded questions of the Glow chapter: right answers earn every point, wrong ones don't."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from flowcourse.core import Transform
from flowcourse.exercises import grade_answer
from flowcourse.glow import random_rotation
from tests.exercises.contract import assert_full, assert_loses, assert_stub, raising_stub


class MyLUConv1x1(Transform):
    """The book's solution."""

    def __init__(self, channels, seed=0):
        super().__init__()
        permutation, lower, upper = torch.linalg.lu(random_rotation(channels, seed))
        self.register_buffer("permutation", permutation)
        self.register_buffer("sign_s", torch.sign(upper.diagonal()))
        self.lower = nn.Parameter(torch.tril(lower, diagonal=-1))
        self.upper = nn.Parameter(torch.triu(upper, diagonal=1))
        self.log_abs_s = nn.Parameter(upper.diagonal().abs().log())

    def weight(self):
        eye = torch.eye(len(self.log_abs_s), dtype=self.lower.dtype)
        lower = torch.tril(self.lower, diagonal=-1) + eye
        scales = torch.diag(self.sign_s * self.log_abs_s.exp())
        return self.permutation @ lower @ (torch.triu(self.upper, diagonal=1) + scales)

    def pixels(self, x):
        return x.shape[2] * x.shape[3]

    def forward(self, x):
        z = F.conv2d(x, self.weight()[:, :, None, None])
        return z, (self.pixels(x) * self.log_abs_s.sum()).expand(len(x))

    def inverse(self, z):
        x = F.conv2d(z, torch.linalg.inv(self.weight())[:, :, None, None])
        return x, (-self.pixels(z) * self.log_abs_s.sum()).expand(len(z))


class StubLU(MyLUConv1x1):
    def forward(self, x):
        raise NotImplementedError("glow.lu_conv1x1: write forward")

    def inverse(self, z):
        raise NotImplementedError("glow.lu_conv1x1: write inverse")


class NoPixelFactor(MyLUConv1x1):
    def pixels(self, x):
        return 1


class Unmasked(MyLUConv1x1):
    def weight(self):
        eye = torch.eye(len(self.log_abs_s), dtype=self.lower.dtype)
        scales = torch.diag(self.sign_s * self.log_abs_s.exp())
        return self.permutation @ (self.lower + eye) @ (self.upper + scales)


class Transposed(MyLUConv1x1):
    def forward(self, x):
        z = F.conv2d(x, self.weight().T[:, :, None, None])
        return z, (self.pixels(x) * self.log_abs_s.sum()).expand(len(x))


class NoSigns(MyLUConv1x1):
    def weight(self):
        eye = torch.eye(len(self.log_abs_s), dtype=self.lower.dtype)
        lower = torch.tril(self.lower, diagonal=-1) + eye
        scales = torch.diag(self.log_abs_s.exp())
        return self.permutation @ lower @ (torch.triu(self.upper, diagonal=1) + scales)


class WrongInverseSign(MyLUConv1x1):
    def inverse(self, z):
        return super().inverse(z)[0], -super().inverse(z)[1]


class Identity(MyLUConv1x1):
    def forward(self, x):
        return x, x.new_zeros(len(x))

    def inverse(self, z):
        return z, z.new_zeros(len(z))


def permutation_matrix(permutation):
    return torch.eye(len(permutation))[permutation]


def batchnorm_log_abs_det(batch):
    per_channel = batch.transpose(0, 1).reshape(batch.shape[1], -1)
    std = per_channel.std(dim=1, unbiased=False)
    return (-batch.shape[2] * batch.shape[3] * std.log().sum()).expand(len(batch))


def test_lu_conv1x1_reference_earns_every_point():
    assert_full("glow.lu_conv1x1", MyLUConv1x1)


def test_lu_conv1x1_stub_and_none_earn_nothing():
    assert_stub("glow.lu_conv1x1", StubLU)


@pytest.mark.parametrize("wrong", [NoPixelFactor, Unmasked, Transposed, NoSigns, WrongInverseSign])
def test_lu_conv1x1_wrong_answers_lose_points(wrong):
    assert_loses("glow.lu_conv1x1", wrong)


def test_lu_conv1x1_identity_earns_nothing():
    score = grade_answer("glow.lu_conv1x1", Identity, seed=0)
    assert score.points == 0, score.report()


def test_lu_conv1x1_wrong_log_det_alone_keeps_the_value_points():
    score = grade_answer("glow.lu_conv1x1", NoPixelFactor, seed=0)
    assert score.points == 1.5, score.report()  # z and x right, both log-dets wrong


def test_permutation_matrix():
    assert_full("glow.permutation_matrix", permutation_matrix)
    assert_stub("glow.permutation_matrix", raising_stub("glow.permutation_matrix"))
    transposed = assert_loses("glow.permutation_matrix", lambda p: torch.eye(len(p))[:, p])
    assert transposed.points == 0 and "transposed" in transposed.report()
    identity = grade_answer("glow.permutation_matrix", lambda p: torch.eye(len(p)), seed=0)
    assert identity.points == 0, identity.report()


def test_batchnorm_log_det():
    question_id = "glow.batchnorm_log_det"
    assert_full(question_id, batchnorm_log_abs_det)
    assert_stub(question_id)

    def unbiased(batch):
        std = batch.transpose(0, 1).reshape(batch.shape[1], -1).std(dim=1)
        return (-batch.shape[2] * batch.shape[3] * std.log().sum()).expand(len(batch))

    def no_pixels(batch):
        return batchnorm_log_abs_det(batch) / (batch.shape[2] * batch.shape[3])

    def scalar(batch):
        return batchnorm_log_abs_det(batch)[0]

    for wrong in (unbiased, lambda b: -batchnorm_log_abs_det(b), scalar):
        assert grade_answer(question_id, wrong, seed=1).points == 0
    assert assert_loses(question_id, no_pixels, seeds=(1,)).points < 2
    zeros = grade_answer(question_id, lambda b: torch.zeros(len(b), dtype=b.dtype), seed=0)
    assert zeros.points == 0, zeros.report()
