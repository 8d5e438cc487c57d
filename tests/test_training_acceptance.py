"""Acceptance: MAF and RealNVP, trained with ``fit``, learn the eight Gaussians nearly exactly.

The test negative log-likelihood of any model is the cross-entropy
:math:`H(p, q) = H(p) + \\mathrm{KL}(p \\| q) \\ge H(p)`, so its gap to the true entropy
(estimated by Monte Carlo from the density's exact ``log_prob``) is the KL divergence
the model has left: the test asks for less than 0.15 nats. A gap well *below* zero
would mean a density that does not integrate to one, so that is checked too.

Each model trains in under a minute of CPU on one thread (see tests/conftest.py); speed
itself is measured by ``benchmarks/run.py``, not here.
"""

from __future__ import annotations

import pytest
import torch

from flowcourse import models
from flowcourse.data.toy2d import EightGaussians
from flowcourse.training import fit

pytestmark = pytest.mark.slow

MAX_GAP = 0.15  # nats: the KL divergence from the data to the trained model
TRAIN_SIZE = 20_000
TEST_SIZE = 50_000  # standard error of the test NLL: about 0.005 nats
BATCH_SIZE = 256
# ``fit`` keeps its learning rate constant, so training runs in three stages with falling
# rates: the noise a large rate leaves in the weights costs ~0.1 nats on this density.
SCHEDULE = [(10, 3e-3), (5, 1e-3), (5, 3e-4)]  # (epochs, learning rate)
ARCHITECTURE = dict(num_layers=10, hidden_features=64, num_hidden_layers=3)


@pytest.fixture(scope="module")
def density() -> EightGaussians:
    return EightGaussians()


@pytest.fixture(scope="module")
def entropy(density: EightGaussians) -> float:
    estimate = density.entropy(num_samples=200_000, seed=0)
    assert estimate.standard_error < 0.01, estimate
    return estimate.nats


@pytest.mark.parametrize("name", ["maf", "realnvp"])
def test_flow_learns_eight_gaussians_to_within_a_small_kl(name, density, entropy):
    seed = 0
    flow = getattr(models, name)(features=2, seed=seed, **ARCHITECTURE)
    train_data = density.sample(TRAIN_SIZE, generator=seed)
    for stage, (epochs, learning_rate) in enumerate(SCHEDULE):
        fit(
            flow,
            train_data,
            epochs=epochs,
            batch_size=BATCH_SIZE,
            learning_rate=learning_rate,
            seed=seed + stage,
            device="cpu",
            progress=False,
        )
    test_data = density.sample(TEST_SIZE, generator=10_000 + seed)
    with torch.no_grad():
        test_nll = float(-flow.log_prob(test_data).mean())
    gap = test_nll - entropy
    print(f"{name}: test NLL {test_nll:.4f} nats, entropy {entropy:.4f} nats, gap {gap:.4f}")
    assert gap < MAX_GAP, (
        f"{name} reached a test NLL of {test_nll:.4f} nats, {gap:.4f} above the entropy "
        f"{entropy:.4f} (allowed: {MAX_GAP})"
    )
    assert gap > -0.03, f"{name}'s test NLL is below the entropy by {-gap:.4f} nats: unnormalised?"
