"""The graded questions of the MAF chapter: right answers earn every point, wrong ones don't."""

import pytest
import torch

from flowcourse.core import Transform
from flowcourse.exercises import grade_answer
from tests.exercises.contract import SEEDS, assert_full, assert_stub, points


class MyMAFLayer(Transform):
    """The book's solution."""

    def __init__(self, made):
        super().__init__()
        self.made = made

    def shift_and_log_scale(self, x):
        mu, raw_log_scale = self.made(x).chunk(2, dim=1)
        return mu, 3.0 * torch.tanh(raw_log_scale / 3.0)

    def forward(self, x):
        mu, alpha = self.shift_and_log_scale(x)
        return (x - mu) * torch.exp(-alpha), -alpha.sum(dim=1)

    def inverse(self, z):
        x = torch.zeros_like(z)
        for position in range(1, z.shape[1] + 1):
            mu, alpha = self.shift_and_log_scale(x)
            x = torch.where(self.made.order == position, z * torch.exp(alpha) + mu, x)
        return x, alpha.sum(dim=1)


class StubMAF(MyMAFLayer):
    def forward(self, x):
        raise NotImplementedError("maf.maf_layer: write forward")

    def inverse(self, z):
        raise NotImplementedError("maf.maf_layer: write inverse")


class Unclamped(MyMAFLayer):
    def shift_and_log_scale(self, x):
        return self.made(x).chunk(2, dim=1)


class Swapped(MyMAFLayer):
    def shift_and_log_scale(self, x):
        raw_log_scale, mu = self.made(x).chunk(2, dim=1)
        return mu, 3.0 * torch.tanh(raw_log_scale / 3.0)


class Interleaved(MyMAFLayer):
    def shift_and_log_scale(self, x):
        out = self.made(x).reshape(len(x), -1, 2)
        return out[..., 0], 3.0 * torch.tanh(out[..., 1] / 3.0)


class WrongExponent(MyMAFLayer):
    def forward(self, x):
        mu, alpha = self.shift_and_log_scale(x)
        return (x - mu) * torch.exp(alpha), alpha.sum(dim=1)


class WrongLogDetSign(MyMAFLayer):
    def forward(self, x):
        z, log_abs_det = super().forward(x)
        return z, -log_abs_det


class OnePassInverse(MyMAFLayer):
    def inverse(self, z):
        mu, alpha = self.shift_and_log_scale(torch.zeros_like(z))
        return z * torch.exp(alpha) + mu, alpha.sum(dim=1)


class Identity(MyMAFLayer):
    def forward(self, x):
        return x, x.new_zeros(len(x))

    def inverse(self, z):
        return z, z.new_zeros(len(z))


def test_maf_layer_reference_earns_every_point():
    assert_full("maf.maf_layer", MyMAFLayer)
    score = grade_answer("maf.maf_layer", MyMAFLayer, seed=3)
    assert all(result.passed for result in score.results), score.report()


def test_maf_layer_stub_earns_nothing():
    assert_stub("maf.maf_layer", StubMAF)


@pytest.mark.parametrize(
    "wrong", [Unclamped, Swapped, Interleaved, WrongExponent, WrongLogDetSign, OnePassInverse]
)
def test_maf_layer_wrong_answers_lose_points(wrong):
    assert points("maf.maf_layer", wrong) < 4


def test_maf_layer_identity_earns_nothing():
    assert points("maf.maf_layer", Identity) == 0


def test_maf_layer_reports_a_leak():
    class Leaky(MyMAFLayer):  # mu_i reads x_i: the Jacobian is not triangular any more
        def shift_and_log_scale(self, x):
            mu, alpha = super().shift_and_log_scale(x)
            return mu + 0.1 * x.roll(1, dims=1), alpha

    score = grade_answer("maf.maf_layer", Leaky, seed=0)
    assert score.points < 4
    assert any("autoregressive" in r.name and not r.passed for r in score.results)


def flow_costs_ms(made_pass_ms, num_layers, num_dims):
    one_pass_per_layer = num_layers * made_pass_ms
    every_position = num_layers * num_dims * made_pass_ms
    return {
        "maf_score": one_pass_per_layer,
        "maf_sample": every_position,
        "iaf_score": every_position,
        "iaf_sample": one_pass_per_layer,
    }


def test_flow_costs():
    question_id = "maf.flow_costs"
    assert_full(question_id, flow_costs_ms)

    def stub(*args):
        raise NotImplementedError("maf.flow_costs")

    assert_stub(question_id, stub)

    def swapped(t, k, d):
        costs = flow_costs_ms(t, k, d)
        return {
            "maf_score": costs["iaf_score"],
            "maf_sample": costs["iaf_sample"],
            "iaf_score": costs["maf_score"],
            "iaf_sample": costs["maf_sample"],
        }

    def one_layer_sampling(t, k, d):
        return flow_costs_ms(t, k, d) | {"maf_sample": d * t, "iaf_score": d * t}

    def example(t, k, d):
        return {"maf_score": 10.0, "maf_sample": 7840.0, "iaf_score": 7840.0, "iaf_sample": 10.0}

    assert points(question_id, swapped) == 0
    assert points(question_id, one_layer_sampling) == 1
    assert points(question_id, example) == 0


def dependency_pattern(order_1, order_2):
    first = order_1[None, :] <= order_1[:, None]
    second = order_2[None, :] <= order_2[:, None]
    return (second.double() @ first.double()) > 0


def test_dependency_pattern():
    question_id = "maf.dependency_pattern"
    assert_full(question_id, dependency_pattern)

    def stub(*args):
        raise NotImplementedError("maf.dependency_pattern")

    assert_stub(question_id, stub)

    def wrong_product(order_1, order_2):
        return dependency_pattern(order_2, order_1)

    def strict(order_1, order_2):
        first = order_1[None, :] < order_1[:, None]
        second = order_2[None, :] < order_2[:, None]
        return (second.double() @ first.double()) > 0

    def first_only(order_1, order_2):
        return order_1[None, :] <= order_1[:, None]

    def transposed(order_1, order_2):
        return dependency_pattern(order_1, order_2).T

    def counts(order_1, order_2):  # path counts instead of booleans: accepted
        first = (order_1[None, :] <= order_1[:, None]).double()
        return (order_2[None, :] <= order_2[:, None]).double() @ first

    for wrong in (wrong_product, strict, first_only, transposed):
        assert points(question_id, wrong) == 0, wrong.__name__
    assert points(question_id, counts) == 2
    for seed in SEEDS:
        dense = points(question_id, lambda a, b: torch.ones(len(a), len(a)), seed=seed)
        assert dense == 0
