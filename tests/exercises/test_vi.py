"""The graded questions of the chapter on variational inference: right answers earn every
point, wrong ones don't."""

import torch
from torch.nn import functional as F

from flowcourse.core import Transform
from flowcourse.exercises import grade_answer, question
from tests.exercises.contract import contract_tests

# --- vi.planar_u_hat ---------------------------------------------------------------------


def planar_u_hat(u, w):
    """The book's solution."""
    w_dot_u = w @ u
    return u + (F.softplus(w_dot_u) - 1 - w_dot_u) * w / (w @ w)


def planar_stub(u, w):
    raise NotImplementedError("vi.planar_u_hat: your formula")


def forgot_minus_one(u, w):  # m(a) = softplus(a)
    w_dot_u = w @ u
    return u + (F.softplus(w_dot_u) - w_dot_u) * w / (w @ w)


def unit_w(u, w):  # divides by |w| instead of |w|^2
    w_dot_u = w @ u
    return u + (F.softplus(w_dot_u) - 1 - w_dot_u) * w / w.norm()


def only_when_violated(u, w):  # corrects u only if w^T u < -1
    return planar_u_hat(u, w) if float(w @ u) < -1 else u


def clamp_slope(u, w):  # moves w^T u to -1 exactly when it is below
    w_dot_u = w @ u
    return u + (torch.clamp(w_dot_u, min=-1) - w_dot_u) * w / (w @ w)


# --- vi.radial_sampler -------------------------------------------------------------------


class MyRadial(Transform):
    """The book's solution."""

    def __init__(self, center, alpha, beta):
        super().__init__()
        self.center, self.alpha, self.beta = center, alpha, beta

    def parts(self, z):
        v = z - self.center
        r = v.norm(dim=1)
        return v, r, 1 / (self.alpha + r)

    def inverse(self, z):
        v, r, h = self.parts(z)
        x = z + (self.beta * h)[:, None] * v
        D = z.shape[1]
        log_abs_det = (D - 1) * torch.log1p(self.beta * h) + torch.log1p(
            self.beta * h - self.beta * h**2 * r
        )
        return x, log_abs_det

    def forward(self, x):
        raise NotImplementedError("the density direction is not asked for")


class RadialStub(MyRadial):
    def inverse(self, z):
        raise NotImplementedError("vi.radial_sampler: write inverse")


class RadialMissingMultiplicity(MyRadial):  # (D - 1) forgotten
    def inverse(self, z):
        x, _ = super().inverse(z)
        _, r, h = self.parts(z)
        return x, torch.log1p(self.beta * h) + torch.log1p(self.beta * h - self.beta * h**2 * r)


class RadialWrongDerivative(MyRadial):  # h' = +h^2
    def inverse(self, z):
        x, _ = super().inverse(z)
        _, r, h = self.parts(z)
        D = z.shape[1]
        return x, (D - 1) * torch.log1p(self.beta * h) + torch.log1p(
            self.beta * h + self.beta * h**2 * r
        )


class RadialSquaredDistance(MyRadial):  # r = |z - z0|^2
    def parts(self, z):
        v = z - self.center
        r = (v**2).sum(dim=1)
        return v, r, 1 / (self.alpha + r)


class RadialIdentity(MyRadial):
    def inverse(self, z):
        return z, z.new_zeros(len(z))


# --- tests --------------------------------------------------------------------------------

CORRECT = {
    "vi.planar_u_hat": planar_u_hat,
    "vi.radial_sampler": MyRadial,
}
STUBS = {
    "vi.planar_u_hat": [planar_stub, None],
    "vi.radial_sampler": [RadialStub, None],
}
WRONG = {
    "vi.planar_u_hat": [forgot_minus_one, unit_w, only_when_violated, clamp_slope],
    "vi.radial_sampler": [
        RadialMissingMultiplicity,
        RadialWrongDerivative,
        RadialSquaredDistance,
    ],
}
TRIVIAL = {
    "vi.planar_u_hat": [lambda u, w: u, lambda u, w: torch.zeros_like(u), lambda u, w: w],
    "vi.radial_sampler": [RadialIdentity],
}


(
    test_the_solution_earns_every_point,
    test_a_stub_earns_nothing_and_is_not_answered,
    test_a_wrong_answer_loses_points,
    test_a_trivial_answer_earns_nothing,
) = contract_tests(CORRECT, STUBS, WRONG, TRIVIAL)


def test_correcting_only_violations_earns_half_of_planar():
    score = grade_answer("vi.planar_u_hat", only_when_violated, seed=3)
    assert score.points == 1, score.report()


def test_a_wrong_constructor_signature_is_reported():
    class NoArguments(Transform):
        def __init__(self):
            super().__init__()

    score = grade_answer("vi.radial_sampler", NoArguments, seed=0)
    assert score.points == 0
    assert "MyRadial(center, alpha, beta) raised" in score.report()


def test_the_radial_parameters_are_invertible_and_far_from_the_identity():
    for seed in range(20):
        generator = torch.Generator().manual_seed(seed)
        inputs = question("vi.radial_sampler").make_inputs(generator)
        assert inputs["alpha"] > 0 and inputs["beta"] > -inputs["alpha"]
        assert abs(inputs["beta"]) >= 0.3 - 1e-12


def test_the_protected_objects_exist():
    import importlib

    for question_id in CORRECT:
        for name in question(question_id).protected:
            module_name, _, qualname = name.partition(":")
            target = importlib.import_module(module_name)
            for part in qualname.split("."):
                target = getattr(target, part)
