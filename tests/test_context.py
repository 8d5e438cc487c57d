"""A context through the whole API: layers, Compose, Inverse, Flow, the factories, fit.

A conditional flow models p(x | c): every layer receives the same context, one row per
sample, and a layer that has no use for it accepts it and ignores it.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from flowcourse import models
from flowcourse.checks import check_invertible, check_log_det, check_normalized
from flowcourse.core import Compose, Flow, Inverse, StandardNormal, Transform
from flowcourse.coupling import (
    AdditiveCoupling,
    AffineCoupling,
    DiagonalScaling,
    Squeeze,
    alternating_mask,
    half_mask,
)
from flowcourse.glow import ActNorm, Invertible1x1Conv, LUInvertible1x1Conv
from flowcourse.permutations import RandomPermutation, ReversePermutation
from flowcourse.training import fit
from flowcourse.vi import Planar, Radial
from tests.helpers import randomize_parameters

pytestmark = pytest.mark.usefixtures("float64_by_default", "fixed_seed")

CONDITIONAL = ["maf", "iaf", "realnvp", "nice"]


class Recorder(Transform):
    """The identity, recording the context each call receives."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor | None] = []

    def forward(self, x, context=None):
        self.seen.append(context)
        return x, x.new_zeros(len(x))

    def inverse(self, z, context=None):
        self.seen.append(context)
        return z, z.new_zeros(len(z))


def test_compose_and_inverse_hand_the_context_to_every_layer():
    first, second = Recorder(), Recorder()
    flow = Compose(first, Inverse(Compose(second)))
    x, context = torch.randn(3, 2), torch.randn(3, 4)
    flow(x, context=context)
    flow.inverse(x, context=context)
    Flow(flow, StandardNormal(2), context_features=4).log_prob(x, context=context)
    for recorder in (first, second):
        assert len(recorder.seen) == 3 and all(c is context for c in recorder.seen)
    flow(x)
    assert first.seen[-1] is None and second.seen[-1] is None


class OldStyle(Transform):
    """A layer written before contexts: no context argument at all."""

    def forward(self, x):
        return 2 * x, x.new_full((len(x),), x.shape[1] * math.log(2))

    def inverse(self, z):
        return z / 2, z.new_full((len(z),), -z.shape[1] * math.log(2))


def test_a_layer_without_a_context_argument_still_works_in_an_unconditional_flow():
    flow = Flow(Compose(OldStyle(), Inverse(OldStyle())), StandardNormal(2))
    x = torch.randn(5, 2)
    assert torch.allclose(flow.log_prob(x), StandardNormal(2).log_prob(x))
    assert check_invertible(flow.transform, x)


IGNORING = {
    "DiagonalScaling": lambda: DiagonalScaling(4),
    "ReversePermutation": lambda: ReversePermutation(4),
    "RandomPermutation": lambda: RandomPermutation(4, seed=1),
    "ActNorm": lambda: ActNorm(4),
    "Invertible1x1Conv": lambda: Invertible1x1Conv(4),
    "LUInvertible1x1Conv": lambda: LUInvertible1x1Conv(4),
    "Planar": lambda: Planar(4),
    "Radial": lambda: Radial(4),
    "Compose": lambda: Compose(DiagonalScaling(4), ReversePermutation(4)),
}


@pytest.mark.parametrize("name", sorted(IGNORING))
def test_a_layer_that_ignores_the_context_accepts_it(name):
    layer = randomize_parameters(IGNORING[name](), seed=3)
    x, context = torch.randn(6, 4), torch.randn(6, 2)
    layer(x)  # ActNorm initialises on its first batch
    z, log_abs_det = layer(x)
    z_c, log_abs_det_c = layer(x, context=context)
    assert torch.equal(z, z_c) and torch.equal(log_abs_det, log_abs_det_c)
    assert torch.equal(layer.inverse(z, context=context)[0], layer.inverse(z)[0])


def test_squeeze_ignores_the_context_too():
    x = torch.randn(2, 1, 4, 4)
    assert torch.equal(Squeeze()(x, context=torch.zeros(2, 3))[0], Squeeze()(x)[0])


# ---------------------------------------------------------------------- conditional layers


@pytest.mark.parametrize(
    "make",
    [
        lambda: AffineCoupling.for_vectors(half_mask(5), 8, context_features=3),
        lambda: AdditiveCoupling.for_vectors(alternating_mask(5), 8, context_features=3),
    ],
)
def test_conditional_couplings_pass_the_float64_checks_and_use_the_context(make):
    layer = randomize_parameters(make(), seed=1, scale=0.4)
    x, context = torch.randn(7, 5), torch.randn(7, 3)
    assert check_invertible(layer, x, context=context)
    assert check_log_det(layer, x, context=context)
    assert check_log_det(Inverse(layer), x, context=context)
    z, _ = layer(x, context)
    z_other, _ = layer(x, context + 1.0)
    transformed = ~layer.mask
    assert (z_other - z)[:, transformed].abs().min() > 0, "the context moves every output"
    assert torch.equal(z_other[:, layer.mask], x[:, layer.mask]), "kept values stay"
    with pytest.raises(ValueError, match=r"expected a context of shape \(batch, 3\)"):
        layer(x)


# -------------------------------------------------------------------- conditional flows


def conditional_flow(name: str, seed: int = 0) -> Flow:
    flow = getattr(models, name)(
        features=2, num_layers=3, hidden_features=8, context_features=3, seed=seed
    )
    return randomize_parameters(flow, seed=seed + 1, scale=0.3).double()


@pytest.mark.parametrize("name", CONDITIONAL)
def test_conditional_flows_are_normalised_for_every_context(name):
    flow = conditional_flow(name)
    assert flow.context_features == 3 and flow.config["kwargs"]["context_features"] == 3
    for row in torch.randn(2, 3):
        density = lambda x, row=row: flow.log_prob(x, context=row.expand(len(x), -1))  # noqa: E731
        assert check_normalized(density, bounds=(-10, 10), resolution=200, tolerance=0.02)


@pytest.mark.parametrize("name", CONDITIONAL)
def test_conditional_flows_invert_and_their_log_det_matches_autograd(name):
    flow = conditional_flow(name, seed=2)
    x, context = torch.randn(6, 2), torch.randn(6, 3)
    assert check_invertible(flow.transform, x, context=context)
    assert check_log_det(flow.transform, x, context=context)
    other = flow.log_prob(x, context=context.flip(0))
    assert (flow.log_prob(x, context=context) - other).abs().max() > 1e-3


@pytest.mark.parametrize("name", CONDITIONAL)
def test_sampling_takes_one_context_row_per_sample(name):
    flow = conditional_flow(name, seed=4)
    context = torch.randn(3, 3).repeat_interleave(4, dim=0)  # 4 samples of 3 contexts
    x, log_prob = flow.sample_and_log_prob(12, context=context)
    assert x.shape == (12, 2) and log_prob.shape == (12,)
    assert torch.allclose(log_prob, flow.log_prob(x, context=context), atol=1e-8)
    assert flow.sample(12, context=context).shape == (12, 2)
    with pytest.raises(ValueError, match=r"one context row per sample \(5\), got 12"):
        flow.sample(5, context=context)
    with pytest.raises(ValueError, match=r"expected a context of shape \(batch, 3\)"):
        flow.sample(12)
    with pytest.raises(ValueError, match=r"expected context of shape \(batch, 3\)"):
        flow.log_prob(x, context=context[:, :2])
    with pytest.raises(TypeError, match="dtype"):
        flow.log_prob(x, context=context.float())


@pytest.mark.parametrize("name", ["planar", "radial", "realnvp_image", "glow"])
def test_a_model_that_takes_no_context_refuses_one_clearly(name):
    flow = (
        getattr(models, name)() if name in ("realnvp_image", "glow") else getattr(models, name)(2)
    )
    x = torch.zeros(2, *flow.base.event_shape, dtype=next(flow.parameters()).dtype)
    with pytest.raises(ValueError, match="expected no context .*context_features=0"):
        flow.log_prob(x, context=torch.zeros(2, 3))
    with pytest.raises(TypeError, match="context_features"):
        getattr(models, name)(context_features=3)


def test_the_same_seed_builds_the_same_conditional_flow():
    a, b = models.realnvp(4, context_features=2, seed=3), models.realnvp(4, context_features=2)
    c = models.realnvp(4, context_features=2, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_fit_learns_a_conditional_density():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (512,), generator=generator)
    context = nn.functional.one_hot(labels, 2).double()
    data = (4.0 * labels - 2.0).unsqueeze(1) + 0.5 * torch.randn(512, 2, generator=generator)
    flow = models.maf(2, num_layers=2, hidden_features=16, context_features=2).double()
    history = fit(
        flow,
        data,
        train_context=context,
        validation_data=data[:64],
        validation_context=context[:64],
        epochs=15,
        learning_rate=1e-2,
        device="cpu",
        progress=False,
    )
    assert history.validation_loss[-1] < history.validation_loss[0] - 1
    with torch.no_grad():
        right = flow.log_prob(data, context=context).mean()
        wrong = flow.log_prob(data, context=context.flip(1)).mean()
    assert right > wrong + 5, "the flow learned where each label puts its data"
    with pytest.raises(ValueError, match="one row per sample of train_data"):
        fit(flow, data, train_context=context[:10], epochs=1, device="cpu", progress=False)
