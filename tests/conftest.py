"""Shared test set-up: one torch thread per process.

``make test`` runs two pytest workers on two cores; two threads per worker
oversubscribe the machine and slow the Jacobian tests about tenfold.
"""

import os

import pytest
import torch
from hypothesis import settings

torch.set_num_threads(1)

# The same examples on every run, so that CI cannot fail by luck; explore new ones
# locally with HYPOTHESIS_PROFILE=explore.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="module")
def float64_by_default():
    """Make float64 the default dtype for one test module (opt in with usefixtures)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture
def fixed_seed():
    """Tests that draw from the global generator see the same numbers in any order."""
    torch.manual_seed(0)
