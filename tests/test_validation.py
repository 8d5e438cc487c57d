"""Where inputs are checked (once, at the door) and which exception a mistake raises.

The policy is in flowcourse/validation.py's docstring: a wrong kind of object raises
TypeError, a wrong value ValueError, the same in every constructor; inputs are checked
where a user hands them in (a Flow's methods, fit, the checks module, a layer called
on its own), and layers inside a flow trust them unless set_validation(True).
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from torch import nn

import flowcourse.validation as validation
from flowcourse import io, models
from flowcourse.autoregressive import (
    MADE,
    GatedInverseAutoregressive,
    IAFPosterior,
    InverseAutoregressive,
    MaskedAffineAutoregressive,
    natural_order,
    random_order,
)
from flowcourse.checks import check_invertible, check_log_det
from flowcourse.core import Compose, Flow, StandardNormal, Transform
from flowcourse.coupling import (
    AdditiveCoupling,
    AffineCoupling,
    DiagonalScaling,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
    half_mask,
    realnvp_multiscale,
)
from flowcourse.glow import (
    ActNorm,
    GlowStep,
    Invertible1x1Conv,
    LUInvertible1x1Conv,
    glow_multiscale,
    random_rotation,
)
from flowcourse.nets import MLP, ConvNet, CouplingMLP
from flowcourse.permutations import RandomPermutation, ReversePermutation
from flowcourse.seeding import seeded
from flowcourse.training import fit, fit_reverse_kl, linear_annealing, pick_device
from flowcourse.validation import set_validation, validation_mode
from flowcourse.vi import Planar, Radial
from tests.helpers import randomize_parameters

# ------------------------------------------------------------------ one exception policy

#: Every constructor (and factory) that takes a size, called with that size as ``n``.
SIZED: dict[str, object] = {
    "MADE": lambda n: MADE(n),
    "MADE output_multiplier": lambda n: MADE(3, output_multiplier=n),
    "MADE hidden_features": lambda n: MADE(2, hidden_features=n),
    "MaskedAffineAutoregressive": lambda n: MaskedAffineAutoregressive(n),
    "InverseAutoregressive": lambda n: InverseAutoregressive(n),
    "GatedInverseAutoregressive": lambda n: GatedInverseAutoregressive(n),
    "IAFPosterior": lambda n: IAFPosterior(n, 2),
    "IAFPosterior latent": lambda n: IAFPosterior(4, n),
    "natural_order": lambda n: natural_order(n),
    "random_order": lambda n: random_order(n, seed=0),
    "Planar": lambda n: Planar(n),
    "Radial": lambda n: Radial(n),
    "ActNorm": lambda n: ActNorm(n),
    "Invertible1x1Conv": lambda n: Invertible1x1Conv(n),
    "LUInvertible1x1Conv": lambda n: LUInvertible1x1Conv(n),
    "random_rotation": lambda n: random_rotation(n),
    "GlowStep hidden_channels": lambda n: GlowStep(4, hidden_channels=n),
    "glow_multiscale": lambda n: glow_multiscale(n, 8, hidden_channels=4),
    "realnvp_multiscale": lambda n: realnvp_multiscale(n, 8, hidden_channels=4),
    "realnvp_multiscale image_size": lambda n: realnvp_multiscale(1, (8, n)),
    "DiagonalScaling": lambda n: DiagonalScaling(n),
    "StandardNormal": lambda n: StandardNormal(n),
    "ReversePermutation": lambda n: ReversePermutation(n),
    "RandomPermutation": lambda n: RandomPermutation(n),
    "MLP": lambda n: MLP(n, 2),
    "ConvNet": lambda n: ConvNet(2, n),
    "CouplingMLP": lambda n: CouplingMLP(half_mask(4), num_params=n),
    "AffineCoupling.for_vectors": lambda n: AffineCoupling.for_vectors(half_mask(4), n),
    "AdditiveCoupling.for_images": lambda n: AdditiveCoupling.for_images(
        checkerboard_mask(4, 4), n
    ),
    "alternating_mask": lambda n: alternating_mask(n),
    "half_mask": lambda n: half_mask(n),
    "checkerboard_mask": lambda n: checkerboard_mask(n, 4),
    "channel_mask": lambda n: channel_mask(n),
    "Flow.sample": lambda n: Flow(Compose(), StandardNormal(2)).sample(n),
    "linear_annealing": lambda n: linear_annealing(n),
    **{
        f"models.{name}": (lambda factory: lambda n: factory(n))(getattr(models, name))
        for name in models.__all__
        if callable(getattr(models, name))
        and next(iter(inspect.signature(getattr(models, name)).parameters)) == "features"
    },
}

#: Every constructor that takes a seed, called with that seed as ``s``.
SEEDED: dict[str, object] = {
    "MADE": lambda s: MADE(3, seed=s),
    "random_order": lambda s: random_order(3, seed=s),
    "Planar": lambda s: Planar(2, seed=s),
    "Radial": lambda s: Radial(2, seed=s),
    "RandomPermutation": lambda s: RandomPermutation(3, seed=s),
    "Invertible1x1Conv": lambda s: Invertible1x1Conv(3, seed=s),
    "IAFPosterior": lambda s: IAFPosterior(4, 2, seed=s),
    "seeded": lambda s: seeded(s).__enter__(),
    **{
        f"models.{name}": (lambda factory: lambda s: factory(2, seed=s))(getattr(models, name))
        for name in models.__all__
        if callable(getattr(models, name))
        and "seed" in inspect.signature(getattr(models, name)).parameters
        and next(iter(inspect.signature(getattr(models, name)).parameters)) == "features"
    },
}


@pytest.mark.parametrize("name", sorted(SIZED))
@pytest.mark.parametrize("wrong_kind", [2.0, True, "3", None])
def test_a_size_of_the_wrong_kind_is_a_type_error_everywhere(name, wrong_kind):
    with pytest.raises(TypeError, match="expected .* to be an int"):
        SIZED[name](wrong_kind)


@pytest.mark.parametrize("name", sorted(SIZED))
def test_a_size_of_the_wrong_value_is_a_value_error_everywhere(name):
    with pytest.raises(ValueError, match="expected"):
        SIZED[name](0)


@pytest.mark.parametrize("name", sorted(SEEDED))
@pytest.mark.parametrize("wrong_kind", [1.5, "0"])
def test_a_seed_of_the_wrong_kind_is_a_type_error_everywhere(name, wrong_kind):
    with pytest.raises(TypeError, match="expected seed to be an int"):
        SEEDED[name](wrong_kind)


@pytest.mark.parametrize(
    "make",
    [
        lambda x: AffineCoupling(half_mask(4), nn.Linear(4, 8), log_scale_bound=x),
        lambda x: MaskedAffineAutoregressive(3, log_scale_bound=x),
        lambda x: GatedInverseAutoregressive(3, gate_bias=x),
        lambda x: linear_annealing(10, start=x),
    ],
)
def test_a_number_of_the_wrong_kind_or_value_raises_by_the_policy(make):
    with pytest.raises(TypeError, match="expected"):
        make("1.0")
    with pytest.raises(ValueError, match="expected"):
        make(math.nan)


def test_wrong_kinds_of_tensors_are_type_errors_and_wrong_shapes_value_errors():
    layer = MaskedAffineAutoregressive(3, hidden_features=4)
    with pytest.raises(TypeError, match="torch.Tensor"):
        layer([[0.0, 0.0, 0.0]])
    with pytest.raises(TypeError, match="floating-point"):
        layer(torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="dtype"):
        layer(torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\(batch, 3\)"):
        layer(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="finite"):
        layer(torch.tensor([[0.0, math.nan, 0.0]]))


# ----------------------------------------------------------------------- check at the door


@pytest.fixture
def finiteness_checks(monkeypatch):
    """Count the finiteness checks (each reads a value back from the device)."""
    calls = []
    original = torch.isfinite

    def counting(x):
        calls.append(tuple(x.shape))
        return original(x)

    monkeypatch.setattr(torch, "isfinite", counting)
    return calls


@pytest.fixture
def restore_validation():
    previous = validation_mode()
    yield
    set_validation(previous)


def glow_flow():
    flow = models.glow((1, 8, 8), steps_per_scale=2, hidden_channels=4)
    flow.log_prob(torch.randn(8, 1, 8, 8))  # initialise ActNorm
    return flow


FLOWS = {
    "maf": lambda: models.maf(4, num_layers=3, hidden_features=8),
    "realnvp": lambda: models.realnvp(4, num_layers=3, hidden_features=8),
    "glow": glow_flow,
    "realnvp_image": lambda: models.realnvp_image(hidden_channels=4),
}


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_a_flow_checks_its_input_once_and_its_layers_trust_it(name, finiteness_checks):
    flow = FLOWS[name]()
    x = torch.randn(4, *flow.base.event_shape)
    finiteness_checks.clear()
    flow.log_prob(x)
    assert len(finiteness_checks) == 1, "one check of x, none in the layers"
    finiteness_checks.clear()
    flow.sample(3)
    flow.sample_and_log_prob(3)
    assert finiteness_checks == [], "sampling hands nothing in to check"


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_set_validation_true_makes_every_layer_check(name, finiteness_checks, restore_validation):
    flow = FLOWS[name]()
    x = torch.randn(4, *flow.base.event_shape)
    set_validation(True)
    finiteness_checks.clear()
    flow.log_prob(x)
    layers = [m for m in flow.modules() if isinstance(m, Transform) and not m.container]
    assert len(finiteness_checks) >= len(layers) > 2
    set_validation(False)
    finiteness_checks.clear()
    flow.log_prob(x)
    assert finiteness_checks == []


def test_set_validation_returns_the_previous_mode_and_refuses_others(restore_validation):
    assert validation_mode() == "doors"
    assert set_validation(True) == "doors" and validation_mode() == "layers"
    assert set_validation(False) == "layers" and validation_mode() == "off"
    assert set_validation("doors") == "off"
    with pytest.raises(ValueError, match="expected True, False"):
        set_validation("sometimes")


class MakesNaN(Transform):
    """A buggy layer: a NaN where x is large (its inverse is never used here)."""

    def forward(self, x, context=None):
        return torch.where(x > 1e3, torch.nan, x), x.new_zeros(len(x))

    def inverse(self, z, context=None):
        return z, z.new_zeros(len(z))


def test_a_layer_that_makes_a_nan_is_found_in_debug_mode(restore_validation):
    flow = Flow(Compose(MakesNaN(), DiagonalScaling(2)), StandardNormal(2))
    x = torch.tensor([[0.0, 2e3]])
    assert torch.isnan(flow.log_prob(x)).all()  # the door let a finite input in
    set_validation(True)
    with pytest.raises(ValueError, match="expected x to be finite"):
        flow.log_prob(x)  # DiagonalScaling refuses the NaN MakesNaN made


@pytest.mark.parametrize(
    "door",
    [
        lambda x: models.maf(2, hidden_features=4).log_prob(x),
        lambda x: MaskedAffineAutoregressive(2, hidden_features=4)(x),
        lambda x: Compose(ActNorm(2))(x),
        lambda x: check_invertible(Planar(2), x),
        lambda x: check_log_det(Radial(2), x),
        lambda x: fit(models.nice(2), x, epochs=1, device="cpu", progress=False),
    ],
)
def test_every_door_refuses_a_nan(door):
    with pytest.raises(ValueError, match="finite"):
        door(torch.tensor([[0.0, math.nan], [1.0, 2.0]]))


def test_inside_a_flow_a_layer_skips_its_checks_and_on_its_own_it_checks():
    flow = models.realnvp(4, num_layers=2, hidden_features=8)
    coupling = flow.transform[0]
    calls = []
    original = type(coupling).check_input

    def recording(self, x, inverse=False, context=None):
        calls.append(inverse)
        return original(self, x, inverse, context)

    type(coupling).check_input = recording
    try:
        flow.log_prob(torch.randn(3, 4))
        assert calls == []
        coupling(torch.randn(3, 4))
        coupling.inverse(torch.randn(3, 4))
        assert calls == [False, True]
    finally:
        type(coupling).check_input = original


# ------------------------------------------------------------ two doors that let raw errors out


def test_io_load_of_a_file_that_is_not_a_checkpoint_says_so(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("these are not weights\n")
    with pytest.raises(ValueError, match="is not a torch.save file") as raised:
        io.load(text)
    assert raised.match("flowcourse.io.save")  # what it should be
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="is not a torch.save file"):
        io.load(empty)
    pickled = tmp_path / "model.pt"
    torch.save(nn.Linear(2, 2), pickled)
    with pytest.raises(ValueError, match="Python objects"):
        io.load(pickled)
    truncated = tmp_path / "truncated.pt"
    io.save(models.maf(2, hidden_features=4), tmp_path / "whole.pt")
    truncated.write_bytes((tmp_path / "whole.pt").read_bytes()[:200])
    with pytest.raises(ValueError, match="damaged or truncated"):
        io.load(truncated)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(ValueError, match="holds a Tensor instead of a dict"):
        io.load(tensor)
    # One message for every way a file is not a checkpoint: what it should be, then what it is.
    for path in (text, empty, pickled, truncated, tensor):
        with pytest.raises(ValueError, match=r"^expected a flowcourse checkpoint: a file written"):
            io.load(path)
    with pytest.raises(FileNotFoundError):
        io.load(tmp_path / "missing.pt")


def test_io_load_refuses_a_checkpoint_with_the_old_coupling_conditioners(tmp_path):
    flow = models.realnvp(4, num_layers=2, hidden_features=8)
    state = {
        name.replace("conditioner.net.", "conditioner."): tensor
        for name, tensor in flow.state_dict().items()
        if not name.endswith(("conditioner.kept", "conditioner.transformed"))
    }
    path = tmp_path / "old.pt"
    io.save(flow, path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["state_dict"] = state
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match="conditioners of flowcourse 0.2 and earlier"):
        io.load(path)


@pytest.mark.parametrize("device", ["cuda", "cuda:0", torch.device("cuda")])
def test_fit_on_a_machine_without_cuda_says_no_gpu_is_there(monkeypatch, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    flow = models.maf(2, hidden_features=4)
    data = torch.randn(8, 2)
    for train in (
        lambda: fit(flow, data, epochs=1, device=device, progress=False),
        lambda: fit_reverse_kl(flow, lambda x: -x.square().sum(1), steps=1, device=device),
    ):
        with pytest.raises(ValueError, match="finds none") as raised:
            train()
        assert raised.match('device="auto"')
    assert next(flow.parameters()).device.type == "cpu"


def test_pick_device_refuses_a_gpu_index_that_is_not_there(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert pick_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ValueError, match="one of the 1 CUDA GPU"):
        pick_device("cuda:1")


def test_a_random_layer_still_works_after_the_policy():
    # The checks do not change what a layer computes.
    layer = randomize_parameters(MaskedAffineAutoregressive(3, hidden_features=5), seed=1)
    x = torch.randn(4, 3)
    z, log_abs_det = layer(x)
    with torch.no_grad():
        previous = set_validation(True)
        try:
            z_checked, log_abs_det_checked = layer(x)
        finally:
            set_validation(previous)
    assert torch.equal(z, z_checked) and torch.equal(log_abs_det, log_abs_det_checked)
    assert validation.at_door()
