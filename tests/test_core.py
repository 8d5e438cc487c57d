import math

import pytest
import torch

from flowcourse.checks import check_invertible, check_log_det, check_normalized
from flowcourse.core import Compose, Flow, Inverse, StandardNormal, Transform


class Shift(Transform):
    """A tiny transform for testing the containers: z = 2x + 1."""

    def forward(self, x):
        return 2 * x + 1, x.new_full((x.shape[0],), x[0].numel() * math.log(2))

    def inverse(self, z):
        return (z - 1) / 2, z.new_full((z.shape[0],), -z[0].numel() * math.log(2))


def test_compose_sums_log_dets_and_inverts():
    x = torch.randn(5, 3, dtype=torch.float64)
    flow = Compose(Shift(), Shift())
    z, log_abs_det = flow(x)
    assert torch.allclose(z, 4 * x + 3)
    assert torch.allclose(log_abs_det, torch.full((5,), 3 * 2 * math.log(2), dtype=torch.float64))
    assert check_invertible(flow, x)
    assert check_log_det(flow, x)


class Sinh(Transform):
    """A non-linear test transform: z = sinh(x), log|det| = sum log cosh(x) varies with x."""

    def forward(self, x, context=None):
        return torch.sinh(x), torch.log(torch.cosh(x)).sum(dim=1)

    def inverse(self, z, context=None):
        return torch.asinh(z), -0.5 * torch.log1p(z**2).sum(dim=1)


def autograd_log_abs_det(function, points):
    """log|det| of the Jacobian of ``function`` (one sample at a time), by autograd."""
    return torch.stack(
        [
            torch.linalg.slogdet(
                torch.autograd.functional.jacobian(lambda v: function(v[None])[0][0], point)
            ).logabsdet
            for point in points
        ]
    )


def test_inverse_swaps_directions_and_log_dets():
    x = 1.5 * torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    layer, flipped = Sinh(), Inverse(Sinh())
    # Inverse.forward is the wrapped inverse, Inverse.inverse the wrapped forward.
    z, log_abs_det_forward = flipped(x)
    assert torch.equal(z, torch.asinh(x))
    y, log_abs_det_inverse = flipped.inverse(x)
    assert torch.equal(y, layer(x)[0])
    assert torch.equal(log_abs_det_inverse, layer(x)[1]), "Inverse.inverse: wrong log-det"
    # A round trip through both, and the inverse's log-det at z is minus the forward's at x.
    x_back, log_abs_det_back = flipped.inverse(z)
    assert torch.allclose(x_back, x, atol=1e-12)
    assert torch.allclose(log_abs_det_back, -log_abs_det_forward, atol=1e-12)
    # Both log-dets against autograd; the map is not volume-preserving, so this can fail.
    assert log_abs_det_inverse.std() > 0.1
    for direction, log_abs_det in (
        (flipped.forward, log_abs_det_forward),
        (flipped.inverse, log_abs_det_inverse),
    ):
        assert torch.allclose(log_abs_det, autograd_log_abs_det(direction, x), atol=1e-10)


def test_flow_log_prob_normalised_and_consistent_with_sampling():
    flow = Flow(Compose(Shift()), StandardNormal(2)).double()
    assert check_normalized(flow, bounds=(-12, 12), resolution=300)
    torch.manual_seed(0)
    x, log_prob = flow.sample_and_log_prob(16)
    assert torch.allclose(log_prob, flow.log_prob(x))


def test_check_log_det_detects_a_wrong_log_det():
    class Wrong(Shift):
        def forward(self, x):
            z, log_abs_det = super().forward(x)
            return z, log_abs_det + 0.1

    result = check_log_det(Wrong(), torch.randn(3, 2, dtype=torch.float64))
    assert not result and "autograd" in result.message


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ([[0.0, 1.0]], TypeError),
        (torch.zeros(2, 3, dtype=torch.float64), ValueError),
        (torch.tensor([[float("nan"), 0.0]], dtype=torch.float64), ValueError),
        (torch.zeros(2, 2, dtype=torch.float32), TypeError),
        (torch.zeros(2, 2, dtype=torch.int64), TypeError),
    ],
)
def test_flow_rejects_bad_input(bad, error):
    flow = Flow(Compose(Shift()), StandardNormal(2)).double()
    with pytest.raises(error, match="expected"):
        flow.log_prob(bad)


def test_bad_construction():
    with pytest.raises(TypeError, match="Transform"):
        Compose(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="positive int"):
        Flow(Compose(), StandardNormal(2)).sample(0)
    with pytest.raises(ValueError, match="event shape"):
        StandardNormal(0)


def test_compose_rejects_non_tensors():
    with pytest.raises(TypeError, match="expected x"):
        Compose(Shift())([[0.0, 1.0]])
    with pytest.raises(TypeError, match="expected z"):
        Compose(Shift()).inverse([[0.0, 1.0]])


def test_huge_finite_values_are_not_mistaken_for_non_finite():
    from flowcourse.validation import check_tensor

    x = torch.full((4, 2), 3e38, dtype=torch.float32)  # the sum overflows, the values do not
    assert check_tensor(x) is x


def test_checks_accept_inputs_that_carry_gradients():
    import warnings

    x = torch.randn(3, 2, dtype=torch.float64, requires_grad=True) * 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_invertible(Shift(), x)
        assert check_log_det(Shift(), x)
