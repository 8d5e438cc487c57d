"""The graded questions of the summary chapter: right answers earn every point, wrong
ones don't."""

import torch

from flowcourse.core import Transform
from flowcourse.exercises import grade_answer, question
from tests.exercises.contract import contract_tests

SEEDS = (0, 1, 2)


# --- summary.swap -------------------------------------------------------------------------


class Swap(Transform):
    """The book's solution."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer.inverse(x)

    def inverse(self, z):
        return self.layer(z)


class SwapStub(Swap):
    def forward(self, x):
        raise NotImplementedError("summary.swap: write forward")

    def inverse(self, z):
        raise NotImplementedError("summary.swap: write inverse")


class NotSwapped(Swap):  # the wrapped layer unchanged
    def forward(self, x):
        return self.layer.forward(x)

    def inverse(self, z):
        return self.layer.inverse(z)


class NegatedLogDets(Swap):  # a sign change that is not needed
    def forward(self, x):
        x, log_abs_det = self.layer.inverse(x)
        return x, -log_abs_det

    def inverse(self, z):
        z, log_abs_det = self.layer(z)
        return z, -log_abs_det


class OnlyForwardSwapped(Swap):
    def inverse(self, z):
        return self.layer.inverse(z)


class SwapIdentity(Swap):
    def forward(self, x):
        return x, x.new_zeros(len(x))

    def inverse(self, z):
        return z, z.new_zeros(len(z))


# --- summary.sinh_arcsinh -----------------------------------------------------------------


class SinhArcsinh(Transform):
    """The book's solution."""

    def __init__(self, features, seed=0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.log_a = torch.nn.Parameter(0.5 * torch.randn(features, generator=generator))
        self.b = torch.nn.Parameter(torch.randn(features, generator=generator))

    def scale(self):
        return self.log_a.exp()

    def forward(self, x):
        w = self.scale() * torch.asinh(x) - self.b
        log_derivative = self.scale().log() + torch.log(torch.cosh(w)) - 0.5 * torch.log1p(x**2)
        return torch.sinh(w), log_derivative.sum(dim=1)

    def inverse(self, z):
        x = torch.sinh((torch.asinh(z) + self.b) / self.scale())
        _, log_abs_det = self.forward(x)
        return x, -log_abs_det


class SinhStub(SinhArcsinh):
    def forward(self, x):
        raise NotImplementedError("summary.sinh_arcsinh: write forward")

    def inverse(self, z):
        raise NotImplementedError("summary.sinh_arcsinh: write inverse")


class ScaleWithoutExp(SinhArcsinh):  # a = l instead of a = exp(l)
    def scale(self):
        return self.log_a


class MissingJacobianOfAsinh(SinhArcsinh):  # forgets -1/2 log(1 + x^2)
    def forward(self, x):
        z, log_abs_det = super().forward(x)
        return z, log_abs_det + 0.5 * torch.log1p(x**2).sum(dim=1)


class SinhInsteadOfCosh(SinhArcsinh):
    def forward(self, x):
        w = self.scale() * torch.asinh(x) - self.b
        log_derivative = self.log_a + torch.log(torch.sinh(w).abs()) - 0.5 * torch.log1p(x**2)
        return torch.sinh(w), log_derivative.sum(dim=1)


class InverseWrongSign(SinhArcsinh):  # (asinh(z) - b) / a
    def inverse(self, z):
        x = torch.sinh((torch.asinh(z) - self.b) / self.scale())
        _, log_abs_det = self.forward(x)
        return x, -log_abs_det


class InverseLogDetNotNegated(SinhArcsinh):
    def inverse(self, z):
        x, log_abs_det = super().inverse(z)
        return x, -log_abs_det


class MixesValues(SinhArcsinh):  # adds a neighbour: not diagonal any more
    def forward(self, x):
        z, log_abs_det = super().forward(x)
        return z + 0.1 * x.roll(1, dims=1), log_abs_det


class SinhIdentity(SinhArcsinh):
    def forward(self, x):
        return x, x.new_zeros(len(x))

    def inverse(self, z):
        return z, z.new_zeros(len(z))


class NamedDifferently(Transform):  # parameters called scale and shift
    def __init__(self, features):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.zeros(features))
        self.shift = torch.nn.Parameter(torch.zeros(features))

    def forward(self, x):
        return x, x.new_zeros(len(x))

    def inverse(self, z):
        return z, z.new_zeros(len(z))


# --- tests --------------------------------------------------------------------------------

CORRECT = {"summary.swap": Swap, "summary.sinh_arcsinh": SinhArcsinh}
STUBS = {"summary.swap": [SwapStub, None], "summary.sinh_arcsinh": [SinhStub, ...]}
WRONG = {
    "summary.swap": [NegatedLogDets, OnlyForwardSwapped],
    "summary.sinh_arcsinh": [
        ScaleWithoutExp,
        MissingJacobianOfAsinh,
        SinhInsteadOfCosh,
        InverseWrongSign,
        InverseLogDetNotNegated,
        MixesValues,
    ],
}
TRIVIAL = {
    "summary.swap": [NotSwapped, SwapIdentity],
    "summary.sinh_arcsinh": [SinhIdentity, NamedDifferently],
}


(
    test_the_solution_earns_every_point,
    test_a_stub_earns_nothing_and_is_not_answered,
    test_a_wrong_answer_loses_points,
    test_a_trivial_answer_earns_nothing,
) = contract_tests(CORRECT, STUBS, WRONG, TRIVIAL)


def test_a_needless_sign_change_keeps_only_the_values():
    score = grade_answer("summary.swap", NegatedLogDets, seed=0)
    assert score.points == 1, score.report()


def test_the_passes_of_a_swapped_maf_layer_are_reported():
    report = grade_answer("summary.swap", Swap, seed=0).report()
    assert "an IAF layer" in report
    report = grade_answer("summary.swap", NotSwapped, seed=0).report()
    assert "FAIL MADE passes" in report


def test_a_layer_that_mixes_values_is_not_diagonal():
    report = grade_answer("summary.sinh_arcsinh", MixesValues, seed=0).report()
    assert "FAIL diagonal Jacobian" in report


def test_missing_parameters_are_named():
    report = grade_answer("summary.sinh_arcsinh", NamedDifferently, seed=0).report()
    assert "log_a" in report


def test_the_protected_objects_exist():
    import importlib

    for question_id in CORRECT:
        for name in question(question_id).protected:
            module_name, _, qualname = name.partition(":")
            target = importlib.import_module(module_name)
            for part in qualname.split("."):
                target = getattr(target, part)
