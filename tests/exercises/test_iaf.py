"""The graded questions of the IAF chapter: right answers earn every point, wrong ones don't."""

import torch
from torch.nn import functional as F

from flowcourse.core import Transform
from flowcourse.exercises import grade_answer, question
from tests.exercises.contract import contract_tests

# --- iaf.gated_step -----------------------------------------------------------------------


class MyGatedStep(Transform):
    """The book's solution."""

    def __init__(self, made):
        super().__init__()
        self.made = made

    def proposal_and_logit(self, z):
        return self.made(z).chunk(2, dim=1)

    def inverse(self, z):
        proposal, gate_logit = self.proposal_and_logit(z)
        gate = torch.sigmoid(gate_logit)
        return gate * z + (1 - gate) * proposal, F.logsigmoid(gate_logit).sum(dim=1)

    def forward(self, x):
        z = torch.zeros_like(x)
        for position in range(1, x.shape[1] + 1):
            proposal, gate_logit = self.proposal_and_logit(z)
            gate = torch.sigmoid(gate_logit)
            z = torch.where(self.made.order == position, (x - (1 - gate) * proposal) / gate, z)
        return z, -F.logsigmoid(gate_logit).sum(dim=1)


class GatedStub(MyGatedStep):
    def inverse(self, z):
        raise NotImplementedError("iaf.gated_step: write inverse")

    def forward(self, x):
        raise NotImplementedError("iaf.gated_step: write forward")


class ChunksSwapped(MyGatedStep):  # (s, m) instead of (m, s)
    def proposal_and_logit(self, z):
        gate_logit, proposal = self.made(z).chunk(2, dim=1)
        return proposal, gate_logit


class GateOnProposal(MyGatedStep):  # x = (1 - sigma) z + sigma m
    def inverse(self, z):
        proposal, gate_logit = self.proposal_and_logit(z)
        gate = torch.sigmoid(gate_logit)
        return (1 - gate) * z + gate * proposal, F.logsigmoid(-gate_logit).sum(dim=1)


class ForwardLogDetSign(MyGatedStep):
    def forward(self, x):
        z, log_abs_det = super().forward(x)
        return z, -log_abs_det


class OnePassForward(MyGatedStep):
    def forward(self, x):
        proposal, gate_logit = self.proposal_and_logit(x)
        gate = torch.sigmoid(gate_logit)
        return (x - (1 - gate) * proposal) / gate, -F.logsigmoid(gate_logit).sum(dim=1)


class GatedIdentity(MyGatedStep):
    def inverse(self, z):
        return z, z.new_zeros(len(z))

    def forward(self, x):
        return x, x.new_zeros(len(x))


# --- tests --------------------------------------------------------------------------------

CORRECT = {"iaf.gated_step": MyGatedStep}
STUBS = {"iaf.gated_step": [GatedStub, ...]}
WRONG = {"iaf.gated_step": [ChunksSwapped, GateOnProposal, ForwardLogDetSign, OnePassForward]}
TRIVIAL = {"iaf.gated_step": [GatedIdentity]}


(
    test_the_solution_earns_every_point,
    test_a_stub_earns_nothing_and_is_not_answered,
    test_a_wrong_answer_loses_points,
    test_a_trivial_answer_earns_nothing,
) = contract_tests(CORRECT, STUBS, WRONG, TRIVIAL)


def test_the_gated_log_det_earns_points_only_with_the_values():
    class LogDetOnly(GatedIdentity):
        def inverse(self, z):
            _, log_abs_det = MyGatedStep.inverse(self, z)
            return z, log_abs_det

    score = grade_answer("iaf.gated_step", LogDetOnly, seed=0)
    assert score.points == 0, score.report()


def test_the_protected_objects_exist():
    import importlib

    for question_id in CORRECT:
        for name in question(question_id).protected:
            module_name, _, qualname = name.partition(":")
            target = importlib.import_module(module_name)
            for part in qualname.split("."):
                target = getattr(target, part)
