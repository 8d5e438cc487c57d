"""Tests of saving and loading flows: configs, parameters and registered buffers survive."""

import sys
import types
import warnings

import pytest
import torch
from torch import nn

from flowcourse import io
from flowcourse.core import Compose, Flow, StandardNormal, Transform
from tests.helpers import randomize_parameters


class ShiftScale(Transform):
    """z = (x - shift) * exp(-log_scale), learnable."""

    def __init__(self, features):
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(features))
        self.log_scale = nn.Parameter(torch.zeros(features))

    def forward(self, x):
        return (x - self.shift) * torch.exp(-self.log_scale), -self.log_scale.sum().expand(len(x))

    def inverse(self, z):
        return z * torch.exp(self.log_scale) + self.shift, self.log_scale.sum().expand(len(z))


class DataInitShift(Transform):
    """ActNorm-like: the first batch sets a buffer and flips a buffered "initialised" flag."""

    def __init__(self, features):
        super().__init__()
        self.register_buffer("bias", torch.zeros(features))
        self.register_buffer("initialized", torch.tensor(False))

    def forward(self, x):
        if not self.initialized:
            with torch.no_grad():
                self.bias.copy_(x.mean(0))
                self.initialized.fill_(True)
        return x - self.bias, x.new_zeros(len(x))

    def inverse(self, z):
        return z + self.bias, z.new_zeros(len(z))


def toy_flow(features=3, layers=2, seed=0):
    """A factory as flowcourse.models writes them: it records its own config."""
    transforms = [ShiftScale(features) for _ in range(layers)] + [DataInitShift(features)]
    flow = Flow(Compose(*transforms), StandardNormal(features)).double()
    randomize_parameters(flow, seed=seed)
    flow.config = {"factory": "toy_flow", "kwargs": {"features": features, "layers": layers}}
    return flow


@pytest.fixture
def fake_models(monkeypatch):
    """Stand in for flowcourse.models, so these tests do not depend on its factories."""
    module = types.ModuleType("flowcourse.models")
    module.toy_flow = toy_flow
    module.__all__ = ["toy_flow"]
    monkeypatch.setitem(sys.modules, "flowcourse.models", module)
    return module


def trained(flow):
    """Initialise the data-dependent buffer and perturb the parameters."""
    with torch.no_grad():
        flow.log_prob(torch.randn(16, 3, dtype=torch.float64) + 5)
    return randomize_parameters(flow, seed=7)


def test_save_and_load_through_the_factory(tmp_path, fake_models):
    flow = trained(toy_flow())
    path = tmp_path / "flow.pt"
    io.save(flow, path)
    loaded = io.load(path)
    x = torch.randn(10, 3, dtype=torch.float64)
    assert torch.equal(loaded.log_prob(x), flow.log_prob(x))
    assert loaded.config == flow.config and not loaded.training
    shift = loaded.transform[2]
    assert bool(shift.initialized) and torch.equal(shift.bias, flow.transform[2].bias)
    assert shift.bias.abs().min() > 3  # the data-dependent values, not the zeros of a fresh one
    assert torch.equal(loaded.sample(4, temperature=0.0), flow.sample(4, temperature=0.0))


def test_load_into_a_template(tmp_path):
    flow = trained(toy_flow())
    flow.config = None  # a hand-built flow without a factory
    io.save(flow, tmp_path / "flow.pt")
    template = toy_flow(seed=99)
    assert not bool(template.transform[2].initialized)
    loaded = io.load(tmp_path / "flow.pt", flow=template)
    assert loaded is template and bool(template.transform[2].initialized)
    x = torch.randn(5, 3, dtype=torch.float64)
    assert torch.equal(template.log_prob(x), flow.log_prob(x))


def test_checkpoint_contents(tmp_path):
    import flowcourse

    flow = trained(toy_flow())
    io.save(flow, tmp_path / "flow.pt")
    checkpoint = torch.load(tmp_path / "flow.pt", weights_only=True)
    assert checkpoint["flowcourse_version"] == flowcourse.__version__
    assert checkpoint["config"] == flow.config and checkpoint["format_version"] == 1
    assert set(checkpoint["state_dict"]) == set(flow.state_dict())
    assert all(t.device.type == "cpu" for t in checkpoint["state_dict"].values())


def test_a_newer_version_warns_and_an_older_one_loads_silently(tmp_path, fake_models):
    io.save(toy_flow(), tmp_path / "flow.pt")
    checkpoint = torch.load(tmp_path / "flow.pt", weights_only=True)
    checkpoint["flowcourse_version"] = "99.0.1"
    torch.save(checkpoint, tmp_path / "new.pt")
    with pytest.warns(UserWarning, match="flowcourse 99.0.1, newer than"):
        io.load(tmp_path / "new.pt")
    checkpoint["flowcourse_version"] = "0.0.1"
    torch.save(checkpoint, tmp_path / "old.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        io.load(tmp_path / "old.pt")


def test_missing_config_unknown_factory_and_bad_files(tmp_path, fake_models):
    flow = toy_flow()
    flow.config = None
    io.save(flow, tmp_path / "no_config.pt")
    with pytest.raises(ValueError, match="expected .* to hold a config"):
        io.load(tmp_path / "no_config.pt")

    flow.config = {"factory": "banana", "kwargs": {}}
    io.save(flow, tmp_path / "banana.pt")
    with pytest.raises(
        ValueError, match=r"expected a factory of flowcourse.models in \['toy_flow'\]"
    ):
        io.load(tmp_path / "banana.pt")

    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="expected a flowcourse checkpoint.*holds a dict without"):
        io.load(tmp_path / "other.pt")


def test_mismatched_state_lists_what_differs(tmp_path):
    io.save(toy_flow(features=3, layers=2), tmp_path / "flow.pt")
    with pytest.raises(ValueError, match=r"different shapes: \['transform.transforms.0.shift"):
        io.load(tmp_path / "flow.pt", flow=toy_flow(features=4, layers=2))
    with pytest.raises(ValueError, match=r"not in the flow: \[.*'transform.transforms.2.bias'"):
        io.load(tmp_path / "flow.pt", flow=toy_flow(features=3, layers=1))
    with pytest.raises(ValueError, match="missing from the checkpoint"):
        io.load(tmp_path / "flow.pt", flow=toy_flow(features=3, layers=3))


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"factory": "toy_flow"}, "expected flow.config to be"),
        ("maf", "expected flow.config to be"),
        ({"factory": "toy_flow", "kwargs": {"activation": nn.ReLU}}, "only JSON data"),
    ],
)
def test_save_rejects_a_bad_config(tmp_path, config, match):
    flow = toy_flow()
    flow.config = config
    with pytest.raises(ValueError, match=match):
        io.save(flow, tmp_path / "flow.pt")
    assert not (tmp_path / "flow.pt").exists()


def test_save_and_load_reject_non_modules(tmp_path):
    with pytest.raises(TypeError, match="expected flow to be an nn.Module"):
        io.save({"weights": 1}, tmp_path / "flow.pt")
    io.save(toy_flow(), tmp_path / "flow.pt")
    with pytest.raises(TypeError, match="expected flow to be an nn.Module"):
        io.load(tmp_path / "flow.pt", flow="toy_flow")


def test_round_trip_with_the_real_models_factories(tmp_path):
    models = pytest.importorskip("flowcourse.models")
    flow = models.maf(features=2, num_layers=2, hidden_features=8)
    randomize_parameters(flow, seed=1)
    io.save(flow, tmp_path / "maf.pt")
    loaded = io.load(tmp_path / "maf.pt")
    x = torch.randn(6, 2)
    assert torch.equal(loaded.log_prob(x), flow.log_prob(x))


def test_round_trip_of_a_conditional_flow_keeps_its_context_features(tmp_path):
    from flowcourse import models

    flow = models.maf(features=3, num_layers=2, hidden_features=8, context_features=2)
    randomize_parameters(flow, seed=2)
    io.save(flow, tmp_path / "conditional.pt")
    loaded = io.load(tmp_path / "conditional.pt")
    assert loaded.config["kwargs"]["context_features"] == loaded.context_features == 2
    x, context = torch.randn(6, 3), torch.randn(6, 2)
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(x, context), flow.eval().log_prob(x, context))
        # The context matters: another context gives other densities.
        assert not torch.allclose(loaded.log_prob(x, context), loaded.log_prob(x, -context))


def test_shipped_conditional_digits_maf_reads_a_one_hot_label():
    """maf_digits_conditional.pt (scripts/train_conditional_maf_digits.py): p(x | y)."""
    from importlib.resources import as_file, files

    with as_file(files("flowcourse") / "checkpoints" / "maf_digits_conditional.pt") as path:
        flow = io.load(path)
    assert flow.config["factory"] == "maf"
    assert flow.config["kwargs"]["context_features"] == flow.context_features == 10
    x = torch.zeros(10, 64)
    with torch.no_grad():
        log_prob = flow.log_prob(x, torch.eye(10))  # the same image under each label
    assert torch.isfinite(log_prob).all() and len(set(log_prob.tolist())) == 10


def test_load_keeps_a_float64_flow_in_float64(tmp_path):
    from flowcourse import io, models

    flow = models.maf(features=3, num_layers=2, hidden_features=8).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    io.save(flow, tmp_path / "flow.pt")
    loaded = io.load(tmp_path / "flow.pt")
    assert next(loaded.parameters()).dtype == torch.float64
    assert torch.equal(loaded.log_prob(x), flow.eval().log_prob(x))


def test_every_shipped_checkpoint_loads_and_is_under_a_megabyte():
    """Checkpoints are rebuilt from their factory's config: a layer whose parameters
    changed shape fails here until its scripts/train_*.py writes it again."""
    from importlib.resources import as_file, files
    from pathlib import Path

    with as_file(files("flowcourse") / "checkpoints") as folder:
        paths = sorted(Path(folder).glob("*.pt"))
        assert len(paths) >= 5
        loaded = 0
        for path in paths:
            assert path.stat().st_size < 1_000_000, f"{path.name} is over 1 MB"
            raw = torch.load(path, weights_only=True)
            if not isinstance(raw, dict) or raw.get("format") != io.FORMAT or not raw["config"]:
                continue  # a history, or a part loaded into a model built by hand
            flow = io.load(path)
            dtype = next(flow.parameters()).dtype
            x = torch.zeros(2, *flow.base.event_shape, dtype=dtype)
            context = None
            if flow.context_features:  # a conditional flow: the first one-hot row, twice
                context = torch.eye(flow.context_features, dtype=dtype)[[0, 0]]
            with torch.no_grad():
                log_prob = flow.log_prob(x, context)
                assert torch.isfinite(log_prob).all(), path.name
            loaded += 1
    assert loaded >= 5
