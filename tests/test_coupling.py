"""Masks, NICE's additive coupling and scaling, RealNVP's affine coupling and squeeze."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from flowcourse.checks import check_invertible, check_log_det, jacobian
from flowcourse.coupling import (
    AdditiveCoupling,
    AffineCoupling,
    DiagonalScaling,
    Squeeze,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
    half_mask,
    soft_clamp,
)
from flowcourse.nets import CouplingMLP
from tests.helpers import randomize_parameters, split_branch, split_masks

DOUBLE = torch.float64
COUPLINGS = [AdditiveCoupling, AffineCoupling]


def vector_mask(features: int, index: int) -> torch.Tensor:
    """One of the four vector masks, chosen by ``index`` (0-3)."""
    if index < 2:
        return alternating_mask(features, parity=index)
    return half_mask(features, first=index == 2)


def image_mask(channels: int, height: int, width: int, index: int) -> torch.Tensor:
    """One of the four image masks (checkerboards, then channel halves) chosen by ``index``."""
    if index < 2:
        return checkerboard_mask(height, width, parity=index)
    return channel_mask(channels, first=index == 2)


def vector_coupling(coupling: type, mask: torch.Tensor, seed: int = 0) -> nn.Module:
    layer = coupling.for_vectors(mask, hidden_features=16).double()
    return randomize_parameters(layer, seed=seed)


def image_coupling(coupling: type, mask: torch.Tensor, channels: int, seed: int = 0) -> nn.Module:
    layer = coupling.for_images(mask, channels, hidden_channels=8).double()
    return randomize_parameters(layer, seed=seed)


def expanded_keep(mask: torch.Tensor, event_shape: tuple[int, ...]) -> torch.Tensor:
    """The mask broadcast to the event shape and flattened like the Jacobian's rows."""
    return mask.expand(event_shape).reshape(-1)


# ------------------------------------------------------------------------------ masks


def test_masks_have_the_documented_values_and_shapes():
    assert alternating_mask(4).tolist() == [True, False, True, False]
    assert alternating_mask(3, parity=1).tolist() == [False, True, False]
    assert half_mask(4).tolist() == [True, True, False, False]
    assert half_mask(5, first=False).tolist() == [False, False, True, True, True]
    board = checkerboard_mask(3, 4, parity=1)
    assert board.shape == (1, 3, 4) and board.dtype == torch.bool
    assert board[0, 0, 0].item() is False and board[0, 0, 1].item() is True
    assert board[0, 1, 0].item() is True
    channels = channel_mask(6, first=False)
    assert channels.shape == (6, 1, 1)
    assert channels.flatten().tolist() == [False] * 3 + [True] * 3


@settings(max_examples=15, deadline=None)
@given(features=st.integers(2, 40), height=st.integers(1, 9), width=st.integers(2, 9))
def test_alternate_masks_are_complements(features, height, width):
    assert torch.equal(alternating_mask(features, 0), ~alternating_mask(features, 1))
    assert torch.equal(half_mask(features, True), ~half_mask(features, False))
    assert torch.equal(checkerboard_mask(height, width, 0), ~checkerboard_mask(height, width, 1))
    assert torch.equal(channel_mask(2 * features, True), ~channel_mask(2 * features, False))
    # Neighbouring pixels always fall on opposite sides of a checkerboard.
    board = checkerboard_mask(height, width)[0]
    assert not (board[:, 1:] == board[:, :-1]).any()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: alternating_mask(1), "features"),
        (lambda: alternating_mask(4, parity=2), "parity"),
        (lambda: half_mask(1), "features"),
        (lambda: checkerboard_mask(1, 1), "at least 2 pixels"),
        (lambda: checkerboard_mask(0, 4), "height"),
        (lambda: channel_mask(3), "even number of channels"),
        (lambda: channel_mask(1), "channels"),
    ],
)
def test_masks_reject_sizes_that_cannot_be_split(make, match):
    with pytest.raises(ValueError, match="expected") as error:
        make()
    assert match in str(error.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda: half_mask(3.0),
        lambda: alternating_mask(4, parity=1.0),
        lambda: checkerboard_mask(4, "4"),
        lambda: channel_mask(True),
    ],
)
def test_masks_refuse_sizes_of_the_wrong_kind(make):
    with pytest.raises(TypeError, match="to be an int"):
        make()


# ------------------------------------------------------------- inverse and log-det


@settings(max_examples=15, deadline=None)
@given(
    coupling=st.sampled_from(COUPLINGS),
    features=st.integers(2, 7),
    mask_index=st.integers(0, 3),
    seed=st.integers(0, 10_000),
)
def test_vector_couplings_invert_and_log_det_matches_autograd(coupling, features, mask_index, seed):
    layer = vector_coupling(coupling, vector_mask(features, mask_index), seed)
    x = torch.randn(4, features, dtype=DOUBLE, generator=torch.Generator().manual_seed(seed))
    assert check_invertible(layer, x)
    assert check_log_det(layer, x)


@settings(max_examples=8, deadline=None)
@given(
    coupling=st.sampled_from(COUPLINGS),
    channels=st.integers(1, 2),
    height=st.integers(2, 3),
    width=st.integers(2, 4),
    mask_index=st.integers(0, 3),
    seed=st.integers(0, 10_000),
)
def test_image_couplings_invert_and_log_det_matches_autograd(
    coupling, channels, height, width, mask_index, seed
):
    if channels % 2:
        mask_index %= 2  # an odd number of channels only has checkerboard masks
    mask = image_mask(channels, height, width, mask_index)
    layer = image_coupling(coupling, mask, channels, seed)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2, channels, height, width, dtype=DOUBLE, generator=generator)
    assert check_invertible(layer, x)
    assert check_log_det(layer, x)


@pytest.mark.parametrize("event_shape", [(5,), (2, 3, 3)])
def test_diagonal_scaling_inverts_and_log_det_matches_autograd(event_shape):
    layer = randomize_parameters(DiagonalScaling(event_shape).double(), seed=3)
    x = torch.randn(4, *event_shape, dtype=DOUBLE)
    assert check_invertible(layer, x)
    assert check_log_det(layer, x)
    z, log_abs_det = layer(x)
    assert torch.allclose(z, x * layer.log_scale.exp())
    assert torch.allclose(log_abs_det, layer.log_scale.sum().expand(4))


def test_fresh_layers_are_the_identity():
    x = torch.randn(3, 6, dtype=DOUBLE)
    for layer in [
        AdditiveCoupling.for_vectors(half_mask(6)).double(),
        AffineCoupling.for_vectors(half_mask(6)).double(),
        DiagonalScaling(6).double(),
    ]:
        z, log_abs_det = layer(x)
        assert torch.equal(z, x) and torch.equal(log_abs_det, torch.zeros(3, dtype=DOUBLE))


# ---------------------------------------------------------------- the explicit formula


class Constant(nn.Module):
    """A conditioner that ignores its input and returns fixed outputs."""

    def __init__(self, output: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("output", output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output.expand(x.shape[0], *self.output.shape)


def test_affine_coupling_follows_the_formula():
    mask = alternating_mask(4)
    shift = torch.tensor([0.5, -1.0, 2.0, 3.0], dtype=DOUBLE)
    raw = torch.tensor([0.1, 0.7, -0.2, -1.5], dtype=DOUBLE)
    layer = AffineCoupling(mask, Constant(torch.cat([shift, raw])), log_scale_bound=2.0)
    x = torch.randn(3, 4, dtype=DOUBLE)
    z, log_abs_det = layer(x)
    m = mask.to(DOUBLE)
    log_scale = 2.0 * torch.tanh(raw / 2.0)
    assert torch.allclose(z, m * x + (1 - m) * (x * log_scale.exp() + shift))
    assert torch.allclose(log_abs_det, ((1 - m) * log_scale).sum().expand(3))
    x_back, inverse_log_abs_det = layer.inverse(z)
    assert torch.allclose(x_back, x) and torch.allclose(inverse_log_abs_det, -log_abs_det)


def test_additive_coupling_follows_the_formula():
    mask = half_mask(4, first=False)
    shift = torch.tensor([0.5, -1.0, 2.0, 3.0], dtype=DOUBLE)
    layer = AdditiveCoupling(mask, Constant(shift))
    x = torch.randn(3, 4, dtype=DOUBLE)
    z, log_abs_det = layer(x)
    m = mask.to(DOUBLE)
    assert torch.allclose(z, m * x + (1 - m) * (x + shift))
    assert torch.equal(log_abs_det, torch.zeros(3, dtype=DOUBLE))


# ----------------------------------------------------------------- Jacobian structure


def assert_coupling_structure(layer: nn.Module, x: torch.Tensor) -> None:
    """Kept outputs are the identity of kept inputs; transformed outputs scale elementwise."""
    jac = jacobian(layer, x)
    keep = expanded_keep(layer.mask, tuple(x.shape[1:]))
    change = ~keep
    n_keep, n_change = int(keep.sum()), int(change.sum())
    kept_rows = jac[:, keep]
    changed_rows = jac[:, change]
    identity = torch.eye(n_keep, dtype=DOUBLE).expand(x.shape[0], n_keep, n_keep)
    assert torch.equal(kept_rows[:, :, keep], identity)
    # Block triangular: kept outputs do not depend on the transformed inputs.
    assert torch.equal(kept_rows[:, :, change], torch.zeros_like(kept_rows[:, :, change]))
    if isinstance(layer, AffineCoupling):
        _, log_scale = layer.shift_and_log_scale(x)
        scale = log_scale.detach().reshape(x.shape[0], -1)[:, change].exp()
    else:
        scale = torch.ones(x.shape[0], n_change, dtype=DOUBLE)
    assert torch.allclose(changed_rows[:, :, change], torch.diag_embed(scale), atol=1e-12)
    # The conditioning block is where the network acts: it must not vanish.
    assert changed_rows[:, :, keep].abs().max() > 1e-3


@pytest.mark.parametrize("coupling", COUPLINGS)
@pytest.mark.parametrize("mask_index", range(4))
def test_vector_coupling_jacobian_structure(coupling, mask_index):
    layer = vector_coupling(coupling, vector_mask(5, mask_index), seed=mask_index)
    assert_coupling_structure(layer, torch.randn(3, 5, dtype=DOUBLE))


@pytest.mark.parametrize("coupling", COUPLINGS)
@pytest.mark.parametrize("mask_index", range(4))
def test_couplings_on_a_2x4x4_image(coupling, mask_index):
    layer = image_coupling(coupling, image_mask(2, 4, 4, mask_index), channels=2, seed=mask_index)
    x = torch.randn(2, 2, 4, 4, dtype=DOUBLE)
    assert check_invertible(layer, x)
    result = check_log_det(layer, x)
    assert result, result.message
    assert_coupling_structure(layer, x)
    if coupling is AffineCoupling:
        # The log-det check must be able to fail: a randomised layer changes volume.
        _, log_abs_det = layer(x)
        assert log_abs_det.abs().min() > 1e-3


def test_structure_check_catches_a_coupling_that_leaks():
    """A layer whose kept values move fails the structure check: the check can fail."""

    class Leaky(AffineCoupling):
        def forward(self, x):
            z, log_abs_det = super().forward(x)
            return z + 0.1 * x.roll(1, dims=1), log_abs_det

    layer = randomize_parameters(Leaky.for_vectors(alternating_mask(4)).double(), seed=1)
    with pytest.raises(AssertionError):
        assert_coupling_structure(layer, torch.randn(2, 4, dtype=DOUBLE))


# ----------------------------------------------------------------------- soft clamp


def test_soft_clamp_is_the_identity_near_zero_and_bounded():
    raw = torch.linspace(-1e4, 1e4, 1001, dtype=DOUBLE)
    assert soft_clamp(raw, 3.0).abs().max() <= 3.0
    small = torch.linspace(-1e-3, 1e-3, 11, dtype=DOUBLE)
    assert torch.allclose(soft_clamp(small, 3.0), small, atol=1e-9)


@pytest.mark.parametrize("bound", [0.5, 3.0])
def test_soft_clamp_is_the_scaled_tanh(bound):
    # soft_clamp computes b tanh(raw / b) through the sigmoid; the two forms agree to
    # round-off, in float64 and in float32 (against the float64 tanh), tails included.
    raw = torch.cat([torch.linspace(-50.0, 50.0, 20001, dtype=DOUBLE), torch.tensor([-1e30, 1e30])])
    exact = bound * torch.tanh(raw / bound)
    assert (soft_clamp(raw, bound) - exact).abs().max() < 1e-14
    assert (soft_clamp(raw.float(), bound).double() - exact).abs().max() < 1e-6 * bound


def test_soft_clamp_refuses_a_bound_that_is_not_positive():
    with pytest.raises(ValueError, match="expected bound > 0, got 0"):
        soft_clamp(torch.zeros(3), 0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_soft_clamp_keeps_small_values_in_half_precision(dtype):
    # The sigmoid form would round these to zero in bfloat16 (sigma is near 0.5 there).
    raw = torch.tensor([1e-3, 1e-2, 0.1, -0.1, 50.0], dtype=dtype)
    assert torch.equal(soft_clamp(raw, 3.0), 3.0 * torch.tanh(raw / 3.0))
    assert (soft_clamp(raw[:3], 3.0).double() - raw[:3].double()).abs().max() < 0.01 * raw[2]


@pytest.mark.parametrize("bound", [0.5, 3.0])
def test_soft_clamp_bounds_the_log_scale_under_huge_conditioner_outputs(bound):
    features = 6
    conditioner = nn.Linear(features, 2 * features).double()
    with torch.no_grad():
        conditioner.weight.normal_(0.0, 1e5)
        conditioner.bias.normal_(0.0, 1e5)
    layer = AffineCoupling(half_mask(features), conditioner, log_scale_bound=bound)
    x = torch.randn(8, features, dtype=DOUBLE)
    shift, log_scale = layer.shift_and_log_scale(x)
    raw = conditioner(x * half_mask(features).to(DOUBLE)).chunk(2, dim=1)[1]
    assert raw.abs().max() > 100 * bound  # the conditioner really does explode
    assert log_scale.abs().max() <= bound
    assert log_scale.abs().max() > 0.99 * bound  # and the clamp saturates rather than zeroes
    z, log_abs_det = layer(x)
    assert torch.isfinite(z).all() and (log_abs_det.abs() <= bound * features / 2).all()
    x_back, _ = layer.inverse(z)
    assert torch.allclose(x_back, x, atol=1e-6)


# ---------------------------------------------------------------------------- squeeze


def test_squeeze_turns_each_2x2_block_into_4_channels():
    x = torch.randn(2, 3, 4, 6, dtype=DOUBLE)
    z, log_abs_det = Squeeze()(x)
    assert z.shape == (2, 12, 2, 3)
    assert torch.equal(log_abs_det, torch.zeros(2, dtype=DOUBLE))
    for c in range(3):
        for i in range(2):
            for j in range(2):
                assert torch.equal(z[:, 4 * c + 2 * i + j], x[:, c, i::2, j::2])


@settings(max_examples=6, deadline=None)
@given(channels=st.integers(1, 2), height=st.sampled_from([2, 4]), width=st.sampled_from([2, 6]))
def test_squeeze_inverts_and_is_a_permutation(channels, height, width):
    x = torch.randn(2, channels, height, width, dtype=DOUBLE)
    layer = Squeeze()
    assert check_invertible(layer, x, atol=0.0)
    assert check_log_det(layer, x)
    jac = jacobian(layer, x)[0]
    assert torch.equal(jac.sum(dim=0), torch.ones(jac.shape[0], dtype=DOUBLE))
    assert torch.equal(jac.sum(dim=1), torch.ones(jac.shape[0], dtype=DOUBLE))


@pytest.mark.parametrize(("height", "width"), [(3, 4), (4, 5), (5, 5)])
def test_squeeze_names_odd_sizes(height, width):
    with pytest.raises(ValueError, match="expected") as error:
        Squeeze()(torch.zeros(1, 1, height, width))
    assert f"height {height}" in str(error.value) and f"width {width}" in str(error.value)


def test_squeeze_inverse_needs_channels_divisible_by_4():
    with pytest.raises(ValueError, match="expected z with a number of channels divisible by 4"):
        Squeeze().inverse(torch.zeros(1, 6, 2, 2))


# ------------------------------------------------ state_dict, modes, float32, devices


def state_dict_cases():
    """(build(seed, mask_index), input) pairs; different mask indices give different masks."""
    return [
        (
            lambda seed, i: vector_coupling(AffineCoupling, vector_mask(6, i), seed),
            torch.randn(4, 6, dtype=DOUBLE),
        ),
        (
            lambda seed, i: vector_coupling(AdditiveCoupling, vector_mask(6, i), seed),
            torch.randn(4, 6, dtype=DOUBLE),
        ),
        (
            lambda seed, i: image_coupling(AffineCoupling, image_mask(2, 4, 4, i), 2, seed),
            torch.randn(2, 2, 4, 4, dtype=DOUBLE),
        ),
        (
            lambda seed, i: randomize_parameters(DiagonalScaling((2, 3)).double(), seed),
            torch.randn(4, 2, 3, dtype=DOUBLE),
        ),
    ]


@pytest.mark.parametrize("case", range(4))
def test_state_dict_round_trip_restores_parameters_and_mask(case):
    build, x = state_dict_cases()[case]
    original = build(1, 0)
    # A different seed and a different mask: both must come back from the state dict.
    restored = build(2, 1)
    z_before, _ = restored(x)
    restored.load_state_dict(original.state_dict())
    z_original, log_abs_det_original = original(x)
    z_restored, log_abs_det_restored = restored(x)
    assert not torch.equal(z_before, z_original)
    assert torch.equal(z_restored, z_original)
    assert torch.equal(log_abs_det_restored, log_abs_det_original)
    if hasattr(original, "mask"):
        assert "mask" in original.state_dict()
        assert torch.equal(restored.mask, original.mask)


def test_to_dtype_keeps_the_mask_boolean():
    layer = AffineCoupling.for_vectors(half_mask(4)).to(DOUBLE)
    assert layer.mask.dtype == torch.bool
    assert layer.mask in list(layer.buffers())


@pytest.mark.parametrize("coupling", COUPLINGS)
def test_float32_couplings_pass_the_checks(coupling):
    layer = randomize_parameters(coupling.for_images(checkerboard_mask(3, 4), 2, 8), seed=5)
    x = torch.randn(2, 2, 3, 4)
    assert check_invertible(layer, x)
    result = check_log_det(layer, x)
    assert result, result.message


# ----------------------------------------------------------------------- bad inputs


def bad_input_cases():
    """(layer, bad input, expected error) for every layer, covering each kind of mistake."""
    vector = vector_coupling(AffineCoupling, half_mask(8))
    additive = vector_coupling(AdditiveCoupling, alternating_mask(8))
    image = image_coupling(AffineCoupling, checkerboard_mask(4, 4), 2)
    channelwise = image_coupling(AdditiveCoupling, channel_mask(4), 4)
    scaling = DiagonalScaling(8).double()
    nan = torch.zeros(2, 8, dtype=DOUBLE)
    nan[1, 3] = math.nan
    return [
        (vector, torch.zeros(32, 7, dtype=DOUBLE), ValueError, r"\(batch, 8\).*\(32, 7\)"),
        (vector, torch.zeros(32, 8, 1, dtype=DOUBLE), ValueError, "shape"),
        (vector, nan, ValueError, "finite"),
        (vector, torch.zeros(2, 8), TypeError, "dtype"),
        (vector, torch.zeros(2, 8, dtype=torch.int64), TypeError, "floating-point"),
        (vector, [[0.0] * 8], TypeError, "torch.Tensor"),
        (additive, torch.zeros(2, 9, dtype=DOUBLE), ValueError, r"\(batch, 8\)"),
        (additive, nan, ValueError, "finite"),
        (additive, torch.zeros(2, 8), TypeError, "dtype"),
        (image, torch.zeros(2, 2, 4, 6, dtype=DOUBLE), ValueError, r"\(batch, 2, 4, 4\)"),
        (image, torch.zeros(2, 3, 4, 4, dtype=DOUBLE), ValueError, r"\(batch, 2, 4, 4\)"),
        (image, torch.zeros(2, 2, 16, dtype=DOUBLE), ValueError, "mask"),
        (image, torch.zeros(2, 2, 4, 4), TypeError, "dtype"),
        (channelwise, torch.zeros(2, 2, 4, 4, dtype=DOUBLE), ValueError, r"\(batch, 4, height"),
        (scaling, torch.zeros(2, 7, dtype=DOUBLE), ValueError, r"\(batch, 8\)"),
        (scaling, nan, ValueError, "finite"),
        (scaling, torch.zeros(2, 8), TypeError, "dtype"),
        (Squeeze(), torch.zeros(2, 8, dtype=DOUBLE), ValueError, "height, width"),
        (Squeeze(), torch.zeros(2, 1, 4, 4, dtype=torch.int64), TypeError, "floating-point"),
    ]


@pytest.mark.parametrize("case", range(len(bad_input_cases())))
@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_bad_inputs_raise_saying_what_was_expected(case, direction):
    layer, bad, error, match = bad_input_cases()[case]
    method = layer if direction == "forward" else layer.inverse
    with pytest.raises(error, match="expected") as raised:
        method(bad)
    assert raised.match(match)


def test_conditioner_with_the_wrong_output_shape_is_reported():
    layer = AffineCoupling(half_mask(4), nn.Linear(4, 4).double())
    with pytest.raises(ValueError, match=r"expected the conditioner to return shape \(3, 8\)"):
        layer(torch.zeros(3, 4, dtype=DOUBLE))
    layer = AdditiveCoupling(half_mask(4), nn.Linear(4, 8).double())
    with pytest.raises(ValueError, match=r"expected the conditioner to return shape \(3, 4\)"):
        layer.inverse(torch.zeros(3, 4, dtype=DOUBLE))


ALL_KEPT = torch.ones(4, dtype=torch.bool)
BOARD = checkerboard_mask(4, 4)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: AffineCoupling(half_mask(4).float(), nn.Linear(4, 8)), TypeError, "bool"),
        (lambda: AffineCoupling([True, False], nn.Linear(2, 4)), TypeError, "torch.Tensor"),
        (lambda: AffineCoupling(ALL_KEPT, nn.Linear(4, 8)), ValueError, "both"),
        (lambda: AffineCoupling(ALL_KEPT.reshape(2, 2), nn.Linear(4, 8)), ValueError, "shape"),
        (lambda: AffineCoupling(half_mask(4), lambda x: x), TypeError, "nn.Module"),
        (lambda: AdditiveCoupling(half_mask(4), "mlp"), TypeError, "nn.Module"),
        (lambda: AffineCoupling(half_mask(4), nn.Linear(4, 8), 0.0), ValueError, "bound"),
        (lambda: AffineCoupling(half_mask(4), nn.Linear(4, 8), math.inf), ValueError, "bound"),
        (lambda: AffineCoupling.for_vectors(checkerboard_mask(2, 2)), ValueError, "vector mask"),
        (lambda: AffineCoupling.for_images(half_mask(4), 2), ValueError, "image mask"),
        (lambda: AffineCoupling.for_images(channel_mask(4), 2), ValueError, "in_channels=2"),
        (lambda: AdditiveCoupling.for_images(BOARD, 0), ValueError, "in_channels"),
        (lambda: AdditiveCoupling(channel_mask(4), nn.Identity(), in_channels=2), ValueError, "=2"),
        (lambda: DiagonalScaling(0), ValueError, "event_shape"),
        (lambda: DiagonalScaling((2, -1)), ValueError, "event_shape"),
        (lambda: DiagonalScaling("8"), TypeError, "event_shape"),
        (lambda: DiagonalScaling(8.0), TypeError, "event_shape"),
    ],
)
def test_bad_construction_raises_saying_what_was_expected(make, error, match):
    with pytest.raises(error, match="expected") as raised:
        make()
    assert raised.match(match)


# ----------------------------------------------- the conditioner of a vector coupling


def full_size_copy(conditioner: CouplingMLP, features: int) -> nn.Sequential:
    """An MLP on the whole masked vector m * x (to all D outputs of every parameter) that
    computes what ``conditioner`` computes: its weights on the transformed inputs are
    random (they multiply zeros), its outputs at kept positions random (the mask drops
    them)."""
    generator = torch.Generator().manual_seed(7)
    linears = [m for m in conditioner.net if isinstance(m, nn.Linear)]
    layers: list[nn.Module] = []
    for index, linear in enumerate(linears):
        last = index == len(linears) - 1
        n_in = features if index == 0 else linear.in_features
        n_out = conditioner.num_params * features if last else linear.out_features
        full = nn.Linear(n_in, n_out).double()
        with torch.no_grad():
            full.weight.copy_(torch.randn(full.weight.shape, generator=generator))
            full.bias.copy_(torch.randn(full.bias.shape, generator=generator))
            rows = torch.arange(linear.out_features)
            if last:  # each parameter's rows go to its transformed positions
                blocks = torch.arange(conditioner.num_params)
                blocks = blocks.repeat_interleave(len(conditioner.transformed))
                rows = blocks * features + conditioner.transformed.repeat(conditioner.num_params)
            columns = conditioner.kept if index == 0 else torch.arange(linear.in_features)
            full.weight[rows[:, None], columns[None, :]] = linear.weight
            full.bias[rows] = linear.bias
        layers += [full, nn.ReLU()]
    return nn.Sequential(*layers[:-1])


@pytest.mark.parametrize("coupling", COUPLINGS)
@pytest.mark.parametrize("index", range(4))
def test_the_gathering_conditioner_is_the_masked_one_of_the_chapters(coupling, index):
    """z = m * x + (1 - m) * (...t(m * x)...) with a full-size t gives the same layer."""
    mask = vector_mask(7, index)
    layer = vector_coupling(coupling, mask, seed=index)
    assert isinstance(layer.conditioner, CouplingMLP)
    full = coupling(mask, full_size_copy(layer.conditioner, 7))
    x = torch.randn(9, 7, dtype=DOUBLE)
    z, log_abs_det = layer(x)
    z_full, log_abs_det_full = full(x)
    assert torch.allclose(z, z_full, atol=1e-12)
    assert torch.allclose(log_abs_det, log_abs_det_full, atol=1e-12)
    assert (z - x).abs().max() > 0.1  # the layer is not the identity


def test_the_conditioner_reads_only_the_kept_values_and_writes_only_the_others():
    mask = alternating_mask(6)
    conditioner = randomize_parameters(CouplingMLP(mask, 2, 8, context_features=2).double())
    x, context = torch.randn(5, 6, dtype=DOUBLE), torch.randn(5, 2, dtype=DOUBLE)
    jac = torch.autograd.functional.jacobian(lambda v: conditioner(v[None], context[:1])[0], x[0])
    assert torch.equal(jac[:, ~mask], torch.zeros_like(jac[:, ~mask]))
    assert jac[:, mask].abs().sum() > 0
    out = conditioner(x, context).reshape(5, 2, 6)
    assert torch.equal(out[:, :, mask], torch.zeros_like(out[:, :, mask]))
    assert conditioner[0].in_features == 3 + 2 and conditioner[-1].out_features == 2 * 3


@pytest.mark.parametrize("features", [2, 3, 8, 32])
@pytest.mark.parametrize("hidden", [16, 64])
def test_vector_couplings_have_the_parameters_of_the_other_libraries(features, hidden):
    """nflows, zuko and normflows: an MLP from the k kept values to 2t (or t) outputs."""
    kept = int(half_mask(features).sum())
    transformed = features - kept

    def mlp(n_in: int, n_out: int) -> int:
        return n_in * hidden + hidden + hidden * hidden + hidden + hidden * n_out + n_out

    def count(layer: nn.Module) -> int:
        return sum(p.numel() for p in layer.parameters())

    affine = AffineCoupling.for_vectors(half_mask(features), hidden)
    additive = AdditiveCoupling.for_vectors(half_mask(features), hidden)
    assert count(affine) == mlp(kept, 2 * transformed)
    assert count(additive) == mlp(kept, transformed)
    conditional = AffineCoupling.for_vectors(half_mask(features), hidden, context_features=5)
    assert count(conditional) == mlp(kept + 5, 2 * transformed)


# ------------------------------------------ the split form of the vector couplings

SPLIT_MASKS = split_masks()


def masked_formula(layer: nn.Module, x: torch.Tensor, context: torch.Tensor | None) -> tuple:
    """The chapters' z = m x + (1 - m)(x e^s + t) (s = 0 for NICE) and its log-det,
    computed from the conditioner's MLP by boolean-mask indexing, not by its own
    split/replace code."""
    mask, conditioner = layer.mask, layer.conditioner
    m = mask.to(x.dtype)
    inputs = (m * x)[:, mask]
    if context is not None:
        inputs = torch.cat([inputs, context], dim=1)
    params = torch.zeros(len(x), conditioner.num_params, len(mask), dtype=x.dtype)
    params[:, :, ~mask] = conditioner.net(inputs).reshape(len(x), conditioner.num_params, -1)
    shift, log_scale = params[:, 0], torch.zeros_like(x)
    if isinstance(layer, AffineCoupling):
        log_scale = soft_clamp(params[:, 1], layer.log_scale_bound) * (1 - m)
    z = m * x + (1 - m) * (x * log_scale.exp() + shift)
    return z, log_scale.sum(dim=1)


@pytest.mark.parametrize("coupling", COUPLINGS)
@pytest.mark.parametrize("mask_name", list(SPLIT_MASKS))
@pytest.mark.parametrize("context_features", [0, 3])
def test_the_split_form_is_the_masked_formula(coupling, mask_name, context_features):
    mask, branch = SPLIT_MASKS[mask_name]
    layer = coupling.for_vectors(mask, hidden_features=16, context_features=context_features)
    layer = randomize_parameters(layer.double(), seed=3)
    assert split_branch(layer.conditioner) == branch  # the branch under test
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(6, 7, dtype=DOUBLE, generator=generator)
    context = torch.randn(6, 3, dtype=DOUBLE, generator=generator) if context_features else None
    z_expected, log_abs_det_expected = masked_formula(layer, x, context)
    z, log_abs_det = layer(x, context)
    assert torch.allclose(z, z_expected, rtol=0.0, atol=1e-12)
    assert torch.allclose(log_abs_det, log_abs_det_expected, rtol=0.0, atol=1e-12)
    assert torch.equal(z[:, mask], x[:, mask])  # kept values pass through bit for bit
    assert (z - x).abs().max() > 0.1  # the layer is not the identity
    if coupling is AffineCoupling:
        assert log_abs_det.abs().min() > 1e-3
    x_back, inverse_log_abs_det = layer.inverse(z_expected, context)
    assert torch.allclose(x_back, x, rtol=0.0, atol=1e-12)
    assert torch.allclose(inverse_log_abs_det, -log_abs_det_expected, rtol=0.0, atol=1e-12)


@pytest.mark.parametrize("mask_name", list(SPLIT_MASKS))
def test_split_and_replace_transformed_cut_and_glue_at_the_mask(mask_name):
    mask, branch = SPLIT_MASKS[mask_name]
    conditioner = CouplingMLP(mask, 2, 8)
    assert split_branch(conditioner) == branch
    x, values = torch.randn(4, 7, dtype=DOUBLE), torch.randn(4, int((~mask).sum()), dtype=DOUBLE)
    kept, transformed = conditioner.split(x)
    assert torch.equal(kept, x[:, mask]) and torch.equal(transformed, x[:, ~mask])
    before = x.clone()
    glued = conditioner.replace_transformed(x, values)
    assert torch.equal(glued[:, mask], x[:, mask]) and torch.equal(glued[:, ~mask], values)
    assert torch.equal(x, before)  # a new tensor: x itself is not written
    assert torch.equal(conditioner.replace_transformed(x, transformed), x)
    # Gradients reach x's kept values and the new values, and nothing else of x.
    x.requires_grad_()
    values.requires_grad_()
    conditioner.replace_transformed(x, values).sum().backward()
    assert torch.equal(x.grad, mask.to(DOUBLE).expand(4, 7))
    assert torch.equal(values.grad, torch.ones_like(values))


def test_loading_a_state_dict_with_other_indices_switches_the_branch():
    """The slices are found from the loaded indices, not kept from the constructor."""
    spread = randomize_parameters(AffineCoupling.for_vectors(alternating_mask(6), 8).double())
    blocks = AffineCoupling.for_vectors(half_mask(6), 8).double()
    assert blocks.conditioner.blocks is not None
    blocks.load_state_dict(spread.state_dict())
    assert split_branch(blocks.conditioner) == "strided"
    x = torch.randn(5, 6, dtype=DOUBLE)
    z, log_abs_det = blocks(x)
    z_spread, log_abs_det_spread = spread(x)
    assert torch.equal(z, z_spread) and torch.equal(log_abs_det, log_abs_det_spread)


def test_loading_indices_that_are_not_evenly_spaced_leaves_the_strided_branch():
    uneven = torch.tensor([True, True, False, False, True, False, True])  # T = 2, 3, 5
    spread = randomize_parameters(AffineCoupling.for_vectors(uneven, 8).double())
    strided = AffineCoupling.for_vectors(alternating_mask(7), 8).double()
    assert split_branch(strided.conditioner) == "strided"
    strided.load_state_dict(spread.state_dict())
    assert split_branch(strided.conditioner) == "indices"
    x = torch.randn(5, 7, dtype=DOUBLE)
    assert torch.equal(strided(x)[0], spread(x)[0])


@pytest.mark.parametrize("coupling", COUPLINGS)
def test_a_coupling_mlp_of_another_mask_is_refused(coupling):
    num_params = 2 if coupling is AffineCoupling else 1
    with pytest.raises(ValueError, match=r"expected a CouplingMLP built from the coupling's mask"):
        coupling(half_mask(4), CouplingMLP(alternating_mask(4), num_params))
    with pytest.raises(ValueError, match="keeps indices"):
        coupling(half_mask(5), CouplingMLP(half_mask(4), num_params))


@pytest.mark.parametrize("coupling", COUPLINGS)
def test_a_mask_edited_in_place_is_followed_as_before(coupling):
    """The chapter NICE sets every layer's mask in place: the layer then keeps what the
    new mask keeps (masked formula), also in a deep copy, and the split form comes back
    with the original mask."""
    import copy

    layer = vector_coupling(coupling, alternating_mask(4, parity=1), seed=2)
    x = torch.randn(5, 4, dtype=DOUBLE)
    assert layer.split_form()
    z_split, _ = layer(x)
    edited = copy.deepcopy(layer)
    edited.mask.copy_(alternating_mask(4, parity=0))
    assert not edited.split_form()
    z, _ = edited(x)
    assert torch.equal(z[:, edited.mask], x[:, edited.mask])  # the new kept values stay
    assert check_invertible(edited, x)
    edited.mask.copy_(alternating_mask(4, parity=1))
    assert edited.split_form() and torch.equal(edited(x)[0], z_split)


@pytest.mark.parametrize("coupling", COUPLINGS)
@pytest.mark.parametrize("mask_name", list(SPLIT_MASKS))
def test_forward_hooks_on_the_conditioner_see_every_pass(coupling, mask_name):
    # The summary chapter counts network passes with hooks on `conditioner`: the fast
    # form must still call the conditioner as a module, once per direction.
    layer = coupling.for_vectors(SPLIT_MASKS[mask_name][0], hidden_features=8)
    assert layer.split_form()
    calls = []
    layer.conditioner.register_forward_hook(lambda *_: calls.append(1))
    z, _ = layer(torch.randn(3, 7))
    layer.inverse(z)
    assert len(calls) == 2
