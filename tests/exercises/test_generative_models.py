"""The graded questions of the chapter *Generative models*: a correct answer earns every
point, the stub and trivial or typical wrong answers do not."""

import math

import torch

from flowcourse.exercises import grade_answer
from tests.exercises.contract import (
    assert_full,
    assert_stub,
    assert_zero,
)

# --- generative_models.bits_per_dim -------------------------------------------------


def test_bits_per_dim():
    qid = "generative_models.bits_per_dim"
    assert_full(qid, lambda nll, d: nll / (d * math.log(2)))

    def stub(nll, d):
        raise NotImplementedError("generative_models.bits_per_dim: your formula")

    assert_stub(qid, stub)
    assert_zero(qid, lambda nll, d: nll / math.log(2))  # bits, not per dimension
    assert_zero(qid, lambda nll, d: nll / (d * math.log(10)))  # wrong base
    assert_zero(qid, lambda nll, d: nll * math.log(2) / d)  # multiplied by ln 2
    assert_zero(qid, lambda nll, d: 3.0)  # a constant


# --- generative_models.ml_gaussian_nll ----------------------------------------------


def _covariance(data, correction=0):
    centred = data - data.mean(dim=0)
    return centred.T @ centred / (data.shape[0] - correction)


def test_ml_gaussian_nll():
    qid = "generative_models.ml_gaussian_nll"

    def correct(data):
        return 0.5 * torch.logdet(2 * math.pi * math.e * _covariance(data)).item()

    assert_full(qid, correct)

    def stub(data):
        raise NotImplementedError("generative_models.ml_gaussian_nll: your formula")

    assert_stub(qid, stub)

    def unbiased(data):
        return 0.5 * torch.logdet(2 * math.pi * math.e * _covariance(data, 1)).item()

    def without_e(data):
        return 0.5 * torch.logdet(2 * math.pi * _covariance(data)).item()

    def diagonal(data):
        variances = torch.diagonal(_covariance(data))
        return 0.5 * torch.log(2 * math.pi * math.e * variances).sum().item()

    assert_zero(qid, unbiased)
    assert_zero(qid, without_e)
    assert_zero(qid, diagonal)
    assert_zero(qid, lambda data: 0.0)


# --- generative_models.elbo_gap -----------------------------------------------------


def _log_normal(value, mean, variance):
    return -0.5 * math.log(2 * math.pi * variance) - (value - mean) ** 2 / (2 * variance)


def _elbo(x, w, sigma, m, s):
    expected_log_likelihood = -0.5 * math.log(2 * math.pi * sigma**2) - (
        (x - w * m) ** 2 + w**2 * s**2
    ) / (2 * sigma**2)
    kl_prior = 0.5 * (s**2 + m**2 - 1 - math.log(s**2))
    return expected_log_likelihood - kl_prior


def test_elbo_gap():
    qid = "generative_models.elbo_gap"

    def correct(x, w, sigma, m, s):  # log p(x) - ELBO, the route that avoids the posterior
        return _log_normal(x, 0.0, w**2 + sigma**2) - _elbo(x, w, sigma, m, s)

    assert_full(qid, correct)

    def stub(*args):
        raise NotImplementedError("generative_models.elbo_gap: your formula")

    assert_stub(qid, stub)

    def reversed_kl(x, w, sigma, m, s):  # KL(posterior || q)
        mean, variance = w * x / (w**2 + sigma**2), sigma**2 / (w**2 + sigma**2)
        ratio = variance / s**2
        return 0.5 * (ratio + (m - mean) ** 2 / s**2 - 1 - math.log(ratio))

    def forgot_variance(x, w, sigma, m, s):  # E_q[log p(x|z)] without the w^2 s^2 term
        return correct(x, w, sigma, m, s) - w**2 * s**2 / (2 * sigma**2)

    assert_zero(qid, reversed_kl)
    assert_zero(qid, forgot_variance)
    assert_zero(qid, lambda x, w, sigma, m, s: _elbo(x, w, sigma, m, s))  # the ELBO
    assert_zero(qid, lambda *args: 0.0)


# --- generative_models.tempered_log_prob --------------------------------------------


def _tempered(flow, x, temperature, log_t_factor=-1.0, power=2):
    z, log_abs_det = flow(x)
    dims = z.shape[1]
    base = -0.5 * (z**2).sum(dim=1) / temperature**power - 0.5 * dims * math.log(2 * math.pi)
    return base + log_t_factor * dims * math.log(temperature) + log_abs_det


def test_tempered_log_prob():
    qid = "generative_models.tempered_log_prob"
    assert_full(qid, _tempered)

    def stub(flow, x, temperature):
        raise NotImplementedError("generative_models.tempered_log_prob: your formula")

    assert_stub(qid, stub)
    assert_zero(qid, lambda flow, x, t: _tempered(flow, x, t, log_t_factor=0.0))
    assert_zero(qid, lambda flow, x, t: _tempered(flow, x, t, log_t_factor=1.0))
    assert_zero(qid, lambda flow, x, t: _tempered(flow, x, t, power=1))
    assert_zero(qid, lambda flow, x, t: flow.log_prob(x))  # ignores the temperature
    assert_zero(qid, lambda flow, x, t: flow.log_prob(x / t))
    assert_zero(qid, lambda flow, x, t: torch.zeros(x.shape[0], dtype=x.dtype))


def test_tempered_log_prob_diagnostic_at_unit_temperature():
    score = grade_answer(
        "generative_models.tempered_log_prob",
        lambda flow, x, t: _tempered(flow, x, t, log_t_factor=0.0),
        seed=3,
    )
    assert "T = 1 gives the flow's density" in score.report()
