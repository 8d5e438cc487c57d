"""Tests of the training loops: maximum likelihood (fit) and reverse KL (fit_reverse_kl)."""

import math

import pytest
import torch
from torch import nn

from flowcourse.core import Compose, Flow, StandardNormal, Transform
from flowcourse.preprocessing import DequantizeLogit, bits_per_dim
from flowcourse.training import (
    History,
    fit,
    fit_reverse_kl,
    linear_annealing,
    pick_device,
)


class ElementwiseAffine(Transform):
    """z = (x - shift) * exp(-log_scale): a learnable Gaussian once under a standard normal."""

    def __init__(self, event_shape):
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(event_shape))
        self.log_scale = nn.Parameter(torch.zeros(event_shape))

    def forward(self, x):
        log_abs_det = -self.log_scale.sum().expand(len(x))
        return (x - self.shift) * torch.exp(-self.log_scale), log_abs_det

    def inverse(self, z):
        return z * torch.exp(self.log_scale) + self.shift, self.log_scale.sum().expand(len(z))


def affine_flow(event_shape=(2,), dtype=torch.float64):
    return Flow(Compose(ElementwiseAffine(event_shape)), StandardNormal(event_shape)).to(dtype)


def gaussian_data(num_samples=256, seed=0, mean=3.0, std=2.0, features=2):
    generator = torch.Generator().manual_seed(seed)
    return mean + std * torch.randn(num_samples, features, generator=generator, dtype=torch.float64)


def quick_fit(flow, data, **kwargs):
    options = {"epochs": 5, "batch_size": 32, "learning_rate": 0.05, "device": "cpu"}
    options["progress"] = False
    return fit(flow, data, **{**options, **kwargs})


# --- maximum likelihood ------------------------------------------------------------------


def test_fit_decreases_the_loss_and_finds_the_maximum_likelihood_gaussian():
    flow, data = affine_flow(), gaussian_data(512)
    history = quick_fit(flow, data, epochs=40)
    assert isinstance(history, History) and len(history.train_loss) == 40
    assert history.train_loss[-1] < history.train_loss[0] - 1
    assert history.steps == 40 * 16 == len(history.step_loss) and history.seconds > 0
    affine = flow.transform[0]
    assert torch.allclose(affine.shift, data.mean(0), atol=0.1)
    assert torch.allclose(affine.log_scale.exp(), data.std(0), atol=0.1)
    # The floor: the entropy of N(3, 4 I) in 2-D is log(2 pi e 4) nats.
    assert history.train_loss[-1] == pytest.approx(math.log(2 * math.pi * math.e * 4), abs=0.1)
    assert not flow.training  # left in eval mode


def test_fit_is_deterministic_under_a_seed_and_leaves_the_global_rng_alone():
    data, validation = gaussian_data(100), gaussian_data(40, seed=1)
    state = torch.get_rng_state()
    runs = []
    for seed in (0, 0, 1):
        flow = affine_flow()
        history = quick_fit(flow, data, validation_data=validation, seed=seed)
        runs.append((history, [p.detach().clone() for p in flow.parameters()]))
    assert torch.equal(torch.get_rng_state(), state)
    (first, first_params), (second, second_params), (other, _) = runs
    assert first.step_loss == second.step_loss and first.train_loss == second.train_loss
    assert first.validation_loss == second.validation_loss
    assert all(torch.equal(a, b) for a, b in zip(first_params, second_params, strict=True))
    assert first.step_loss != other.step_loss  # the seed matters: the test can fail


def test_early_stopping_stops_and_restores_the_best_weights():
    """Validation data far from the training data: its loss is best after the first epoch."""
    train, validation = gaussian_data(64, mean=6.0, std=1.0), gaussian_data(64, mean=0.0, std=1.0)
    flow = affine_flow()
    history = quick_fit(flow, train, validation_data=validation, epochs=50, patience=3)
    assert history.best_epoch == 0 and history.stopped_early
    assert (
        len(history.validation_loss) == 4
        and history.validation_loss[3] > history.validation_loss[0]
    )
    reference = affine_flow()
    quick_fit(reference, train, epochs=1)  # the same first epoch: the best weights
    for restored, expected in zip(flow.parameters(), reference.parameters(), strict=True):
        assert torch.equal(restored, expected)
    with torch.no_grad():
        loss = -float(flow.log_prob(validation).mean())
    assert loss == pytest.approx(history.validation_loss[history.best_epoch], abs=1e-12)


def test_without_patience_the_last_weights_are_kept():
    train, validation = gaussian_data(64, mean=6.0, std=1.0), gaussian_data(64, mean=0.0, std=1.0)
    flow = affine_flow()
    history = quick_fit(flow, train, validation_data=validation, epochs=6)
    assert history.best_epoch == 0 and not history.stopped_early and len(history.train_loss) == 6
    with torch.no_grad():
        loss = -float(flow.log_prob(validation).mean())
    assert loss == pytest.approx(history.validation_loss[-1], abs=1e-12)


def test_max_steps_stops_mid_epoch():
    history = quick_fit(affine_flow(), gaussian_data(100), epochs=10, batch_size=10, max_steps=15)
    assert history.steps == 15 and len(history.train_loss) == 2


class Spy(Transform):
    """The identity, recording the dtype and the values of every batch it is given."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x, context=None):
        self.seen.append(x.detach().clone())
        return x, x.new_zeros(len(x))

    def inverse(self, z, context=None):
        return z, z.new_zeros(len(z))


@pytest.mark.parametrize(
    ("flow_dtype", "data_dtype"), [(torch.float64, torch.float32), (torch.float32, torch.float64)]
)
def test_data_is_converted_to_the_flows_dtype(flow_dtype, data_dtype):
    """The flow keeps its dtype and sees every batch (training and validation) in it."""
    spy = Spy()
    flow = Flow(Compose(spy, ElementwiseAffine((2,))), StandardNormal(2)).to(flow_dtype)
    data, validation = gaussian_data(64).to(data_dtype), gaussian_data(16, seed=1).to(data_dtype)
    quick_fit(flow, data, validation_data=validation, epochs=1)
    kept = {p.dtype for p in flow.parameters()}
    assert kept == {flow_dtype}, f"fit changed the flow from {flow_dtype} to {kept}"
    seen = {batch.dtype for batch in spy.seen}
    assert seen == {flow_dtype}, f"the {flow_dtype} flow was given batches of {seen}"
    # The values too: the training batches hold the data (shuffled), then the validation set.
    seen = torch.cat(spy.seen)
    assert len(seen) == 64 + 16
    order = seen[:64, 0].argsort()
    expected = data.to(flow_dtype)
    assert torch.equal(seen[:64][order], expected[expected[:, 0].argsort()])
    assert torch.equal(seen[64:], validation.to(flow_dtype))


def test_images_with_fresh_dequantisation_noise_and_bits_per_dim():
    levels = torch.randint(0, 17, (6, 1, 8, 8), generator=torch.Generator().manual_seed(0)).float()
    preprocess = DequantizeLogit(num_levels=17)
    calls = []

    def recording(batch, generator):
        inputs, log_abs_det = preprocess(batch, generator)
        calls.append((torch.is_grad_enabled(), inputs.detach().clone()))
        return inputs, log_abs_det

    flow = affine_flow(event_shape=(1, 8, 8), dtype=torch.float32)
    history = quick_fit(
        flow,
        levels[:4],
        validation_data=levels[4:],
        epochs=3,
        batch_size=4,
        preprocess=recording,
        num_levels=17,
    )
    train_calls = [inputs for grad, inputs in calls if grad]
    validation_calls = [inputs for grad, inputs in calls if not grad]
    assert len(train_calls) == 3 and len(validation_calls) == 3
    # Fresh noise for training batches every epoch, the same noise for validation.
    order = [t.flatten(1).sum(1).argsort() for t in train_calls]  # undo the shuffling
    assert not torch.equal(train_calls[0][order[0]], train_calls[1][order[1]])
    assert torch.equal(validation_calls[0], validation_calls[1])
    assert torch.equal(validation_calls[1], validation_calls[2])
    expected = [float(bits_per_dim(-loss, 64, 17)) for loss in history.train_loss]
    assert history.train_bits_per_dim == pytest.approx(expected)
    assert len(history.validation_bits_per_dim) == 3
    # The untrained flow in logit space is a poor model but a finite one: a few bits/dim.
    assert 1 < history.validation_bits_per_dim[0] < 20


def test_progress_bar_shows_the_unit(capsys):
    fit(affine_flow(), gaussian_data(32), epochs=2, device="cpu", progress=True)
    assert "nats" in capsys.readouterr().err
    levels = torch.randint(0, 17, (4, 1, 8, 8), generator=torch.Generator().manual_seed(0)).float()
    flow = affine_flow(event_shape=(1, 8, 8), dtype=torch.float32)
    fit(flow, levels, epochs=1, device="cpu", preprocess=DequantizeLogit(17), num_levels=17)
    assert "bits/dim" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"train_data": gaussian_data(8, features=3)},
            ValueError,
            r"expected train_data of shape \(N, 2\)",
        ),
        (
            {"train_data": torch.tensor([[0.0, math.nan]])},
            ValueError,
            "expected train_data to be finite",
        ),
        ({"train_data": torch.zeros(4, 2, dtype=torch.int64)}, TypeError, "expected train_data"),
        ({"train_data": [[0.0, 1.0]]}, TypeError, "expected train_data"),
        ({"train_data": torch.zeros(4)}, ValueError, r"expected train_data of shape \(N, ...\)"),
        ({"validation_data": torch.zeros(4, 3)}, ValueError, "expected validation_data of shape"),
        ({"validation_data": torch.full((4, 2), math.inf)}, ValueError, "to be finite"),
        ({"patience": 2}, ValueError, "expected validation_data when patience"),
        ({"epochs": 0}, ValueError, "expected epochs"),
        ({"batch_size": 2.5}, TypeError, "expected batch_size"),
        ({"learning_rate": -1.0}, ValueError, "expected learning_rate"),
        ({"max_grad_norm": 0.0}, ValueError, "expected max_grad_norm"),
        ({"preprocess": "dequantize"}, TypeError, "expected preprocess"),
        ({"flow": nn.Linear(2, 2)}, TypeError, "expected flow"),
        ({"flow": Flow(Compose(), StandardNormal(2))}, ValueError, "trainable parameters"),
        ({"device": 0}, TypeError, "expected device"),
    ],
)
def test_fit_rejects_bad_arguments(kwargs, error, match):
    arguments = {"flow": affine_flow(), "train_data": gaussian_data(8)} | kwargs
    flow, data = arguments.pop("flow"), arguments.pop("train_data")
    with pytest.raises(error, match=match):
        quick_fit(flow, data, **arguments)


def test_wrong_shape_after_preprocessing_is_caught_by_the_flow():
    def flatten(batch, generator):
        return batch.flatten(1), batch.new_zeros(len(batch))

    with pytest.raises(ValueError, match=r"expected x of shape \(batch, 1, 8, 8\)"):
        quick_fit(affine_flow((1, 8, 8)), torch.zeros(4, 1, 8, 8), preprocess=flatten)


def test_a_non_finite_loss_stops_training_with_advice():
    def broken(batch, generator):
        return batch, torch.full((len(batch),), -math.inf, dtype=batch.dtype)

    with pytest.raises(RuntimeError, match="lower learning_rate"):
        quick_fit(affine_flow(), gaussian_data(8), preprocess=broken)


def test_pick_device(monkeypatch):
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device() == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("cuda")


# --- reverse KL --------------------------------------------------------------------------


def gaussian_target(x):
    """log of exp(-|x - (1, -2)|^2 / (2 * 0.25)), whose log Z is log(2 pi 0.25)."""
    return -0.5 * (((x - torch.tensor([1.0, -2.0], dtype=x.dtype)) / 0.5) ** 2).sum(dim=1)


def test_fit_reverse_kl_reduces_the_kl_to_near_zero():
    flow = affine_flow()
    history = fit_reverse_kl(
        flow,
        gaussian_target,
        steps=300,
        batch_size=256,
        learning_rate=0.05,
        device="cpu",
        progress=False,
    )
    kl = history.kl(math.log(2 * math.pi * 0.25))
    # At the start q = N(0, I), p = N(mu, 0.25 I): per axis, log(0.5) + (1 + mu^2) / 0.5 - 1/2.
    exact_start = sum(math.log(0.5) + (1 + m**2) / (2 * 0.25) - 0.5 for m in (1.0, -2.0))
    assert kl[0] == pytest.approx(exact_start, abs=3.0)  # 5 standard errors on 256 samples
    assert sum(kl[-20:]) / 20 < 0.02 and min(kl) > -0.05
    affine = flow.transform[0]
    assert torch.allclose(affine.shift, torch.tensor([1.0, -2.0], dtype=torch.float64), atol=0.05)
    assert history.beta == [1.0] * 300 and not flow.training


def test_fit_reverse_kl_is_deterministic_and_anneals():
    state = torch.get_rng_state()
    beta = linear_annealing(warmup_steps=10, start=0.1)
    runs = [
        fit_reverse_kl(
            affine_flow(),
            gaussian_target,
            steps=15,
            batch_size=16,
            annealing=beta,
            seed=seed,
            device="cpu",
            progress=False,
        )
        for seed in (3, 3, 4)
    ]
    assert torch.equal(torch.get_rng_state(), state)
    assert runs[0].kl_bound == runs[1].kl_bound != runs[2].kl_bound
    assert runs[0].beta[:3] == pytest.approx([0.1, 0.2, 0.3]) and runs[0].beta[-1] == 1.0


def test_linear_annealing_follows_rezende_and_mohamed():
    beta = linear_annealing()
    assert beta(0) == 0.01 and beta(4_950) == pytest.approx(0.505) and beta(20_000) == 1.0
    with pytest.raises(ValueError, match="expected start"):
        linear_annealing(start=0.0)
    with pytest.raises(ValueError, match="expected warmup_steps"):
        linear_annealing(warmup_steps=0)


@pytest.mark.parametrize(
    ("flow", "log_density", "kwargs", "error", "match"),
    [
        (nn.Linear(2, 2), gaussian_target, {}, TypeError, "sample_and_log_prob"),
        (None, "U1", {}, TypeError, "expected log_density to be callable"),
        (
            None,
            lambda x: x,
            {},
            ValueError,
            r"expected log_density to return a tensor of shape \(8,\)",
        ),
        (None, lambda x: x.sum().item(), {}, ValueError, "got float"),
        (None, lambda x: torch.full((len(x),), -math.inf), {}, RuntimeError, "non-finite"),
        (None, gaussian_target, {"annealing": lambda t: 2.0}, ValueError, "beta in"),
        (None, gaussian_target, {"annealing": 0.5}, TypeError, "expected annealing"),
        (None, gaussian_target, {"steps": 0}, ValueError, "expected steps"),
    ],
)
def test_fit_reverse_kl_rejects_bad_arguments(flow, log_density, kwargs, error, match):
    flow = affine_flow() if flow is None else flow
    with pytest.raises(error, match=match):
        fit_reverse_kl(
            flow,
            log_density,
            steps=kwargs.pop("steps", 2),
            batch_size=8,
            device="cpu",
            progress=False,
            **kwargs,
        )
