r"""The IAF posterior of a variational autoencoder (Kingma et al., 2016, Algorithm 1).

Taught in the chapter *IAF and variational inference*.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from flowcourse.autoregressive.iaf import GatedInverseAutoregressive
from flowcourse.autoregressive.made import natural_order
from flowcourse.nets import MLP
from flowcourse.validation import check_features, check_matches_module, check_tensor

__all__ = ["IAFPosterior"]


class IAFPosterior(nn.Module):
    r"""An encoder :math:`q(z \mid x)` made of a Gaussian and gated IAF steps (Algorithm 1).

    An encoder network maps the data :math:`x` to :math:`(\mu, \log\sigma, h)`. Then

    .. math::

        z_0 = \mu + \sigma \odot \epsilon, \quad \epsilon \sim \mathcal{N}(0, I), \qquad
        z_t = \sigma_t \odot z_{t-1} + (1 - \sigma_t) \odot m_t, \quad
        (m_t, s_t) = \text{MADE}_t(z_{t-1}, h), \ \sigma_t = \operatorname{sigmoid}(s_t),

    for :math:`t = 1..T` (``num_flows`` steps of
    :class:`~flowcourse.autoregressive.GatedInverseAutoregressive`, the ordering reversed
    from each step to the next so every latent gets to condition on every other), and

    .. math::

        \log q(z_T \mid x) = \log \mathcal{N}(\epsilon; 0, I) - \sum_i \log \sigma_i
        - \sum_{t=1}^{T} \sum_i \log \sigma_{t,i}.

    Sampling is reparametrised, so gradients of ``z`` and ``log_q`` reach the encoder and
    every step. The encoder's last layer starts at zero, so a fresh posterior starts at
    :math:`\mathcal{N}(0, I)` pushed through near-identity steps.
    Taught in the chapter *IAF and variational inference*.

    Arguments:
        data_features: size of one data vector :math:`x`.
        latent_features: size of one latent :math:`z`.
        hidden_features: width of the encoder's and of every MADE's hidden layers (a
            MADE with a context needs at least ``latent_features`` units).
        num_flows: the number :math:`T` of gated IAF steps (0 gives a plain Gaussian
            encoder).
        context_features: size of the context :math:`h` that conditions every step.
        seed: fixes the initial weights without touching the global random state.

    Example:
        >>> posterior = IAFPosterior(data_features=4, latent_features=2, num_flows=2)
        >>> z, log_q = posterior.sample_and_log_prob(torch.randn(3, 4), num_samples=5)
        >>> z.shape, log_q.shape
        (torch.Size([5, 3, 2]), torch.Size([5, 3]))
    """

    def __init__(
        self,
        data_features: int,
        latent_features: int,
        hidden_features: int = 64,
        num_flows: int = 2,
        context_features: int = 16,
        seed: int = 0,
    ) -> None:
        super().__init__()
        for name, value in [
            ("data_features", data_features),
            ("latent_features", latent_features),
            ("hidden_features", hidden_features),
            ("context_features", context_features),
        ]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"expected {name} to be a positive int, got {value!r}")
        if isinstance(num_flows, bool) or not isinstance(num_flows, int) or num_flows < 0:
            raise ValueError(f"expected num_flows to be an int >= 0, got {num_flows!r}")
        self.data_features = data_features
        self.latent_features = latent_features
        self.context_features = context_features
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.encoder = MLP(
                data_features, 2 * latent_features + context_features, hidden_features
            )
        order = natural_order(latent_features)
        reversed_order = latent_features + 1 - order
        self.steps = nn.ModuleList(
            GatedInverseAutoregressive(
                latent_features,
                hidden_features=hidden_features,
                order=order if t % 2 == 0 else reversed_order,
                seed=seed + 1 + t,
                context_features=context_features,
            )
            for t in range(num_flows)
        )

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        r"""Return the encoder's ``(mu, log_sigma, h)`` for data ``x`` of shape ``(batch, D)``."""
        x = check_matches_module(check_features(x, self.data_features), self)
        latent = self.latent_features
        mu, log_sigma, context = self.encoder(x).split([latent, latent, self.context_features], 1)
        return mu, log_sigma, context

    def forward(self, x: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        r"""Map noise :math:`\epsilon` of shape ``(num_samples, batch, latent)`` to ``(z, log_q)``.

        The deterministic half of :meth:`sample_and_log_prob`: pass fixed noise to get
        reproducible latents, or to differentiate ``z`` with respect to the noise.
        """
        mu, log_sigma, context = self.encode(x)
        noise = check_matches_module(check_tensor(noise, "noise"), self, "noise")
        expected = (x.shape[0], self.latent_features)
        if noise.dim() != 3 or tuple(noise.shape[1:]) != expected:
            raise ValueError(
                f"expected noise of shape (num_samples, {expected[0]}, {expected[1]}), "
                f"got {tuple(noise.shape)}"
            )
        num_samples = noise.shape[0]
        log_q = _standard_normal_log_prob(noise) - log_sigma.sum(dim=1)
        z = (mu + log_sigma.exp() * noise).reshape(-1, self.latent_features)
        # Every sample of the same x shares its context h.
        context = context.expand(num_samples, -1, -1).reshape(-1, self.context_features)
        log_q = log_q.reshape(-1)
        for step in self.steps:
            z, log_abs_det = step.inverse(z, context=context)
            log_q = log_q - log_abs_det
        return z.reshape(noise.shape), log_q.reshape(num_samples, -1)

    def sample_and_log_prob(self, x: Tensor, num_samples: int = 1) -> tuple[Tensor, Tensor]:
        r"""Draw :math:`z \sim q(z \mid x)` with its log-density, in nats.

        Returns ``z`` of shape ``(num_samples, batch, latent_features)`` and ``log_q`` of
        shape ``(num_samples, batch)``; both are differentiable in the parameters.
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"expected num_samples to be a positive int, got {num_samples!r}")
        x = check_tensor(x)
        reference = self.encoder[0].weight
        noise = torch.randn(
            num_samples,
            x.shape[0],
            self.latent_features,
            dtype=reference.dtype,
            device=reference.device,
        )
        return self(x, noise)

    def log_prob(self, z: Tensor, x: Tensor) -> Tensor:
        r"""The log-density :math:`\log q(z \mid x)` of latents ``z`` of shape ``(batch, latent)``.

        Runs the steps backwards (each takes ``latent_features`` passes), then scores the
        recovered :math:`\epsilon = (z_0 - \mu) / \sigma`. Slow; sampling does not need it.
        """
        mu, log_sigma, context = self.encode(x)
        z = check_matches_module(check_features(z, self.latent_features, "z"), self, "z")
        if z.shape[0] != x.shape[0]:
            raise ValueError(
                f"expected z with the batch size of x ({x.shape[0]}), got {z.shape[0]}"
            )
        log_q = z.new_zeros(z.shape[0])
        for step in reversed(self.steps):
            z, log_abs_det = step(z, context=context)
            log_q = log_q + log_abs_det
        noise = (z - mu) * torch.exp(-log_sigma)
        return log_q + _standard_normal_log_prob(noise) - log_sigma.sum(dim=1)


def _standard_normal_log_prob(noise: Tensor) -> Tensor:
    return -0.5 * (noise**2).sum(dim=-1) - 0.5 * noise.shape[-1] * math.log(2 * math.pi)
