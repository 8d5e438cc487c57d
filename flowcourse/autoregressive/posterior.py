r"""The IAF posterior of a variational autoencoder (Kingma et al., 2016, Algorithm 1).

Taught in the chapter *IAF*.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from flowcourse.autoregressive.iaf import GatedInverseAutoregressive
from flowcourse.autoregressive.made import natural_order
from flowcourse.core import Flow, StandardNormal, Transform
from flowcourse.nets import MLP
from flowcourse.seeding import seeded
from flowcourse.validation import (
    check_context,
    check_features,
    check_int,
    check_matches_module,
    check_positive_int,
)

__all__ = ["IAFPosterior", "IAFPosteriorTransform"]


class IAFPosteriorTransform(Transform):
    r"""The transform of :class:`IAFPosterior`: a Gaussian step, then gated IAF steps.

    Its context is the encoder's output :math:`(\mu, \log\sigma, h)`, concatenated.
    Noise to data (``inverse``, the sampling pass):

    .. math::

        z_0 = \mu + \sigma \odot \epsilon, \qquad
        z_t = \sigma_t \odot z_{t-1} + (1 - \sigma_t) \odot m_t, \quad
        (m_t, s_t) = \text{MADE}_t(z_{t-1}, h), \ \sigma_t = \operatorname{sigmoid}(s_t),

    with :math:`\log|\det \partial z_T/\partial\epsilon| = \sum_i \log\sigma_i +
    \sum_t \sum_i \log\sigma_{t,i}`. ``forward`` (data to noise) undoes the steps in
    reverse order, each in ``latent_features`` passes, then :math:`\epsilon =
    (z_0 - \mu)/\sigma`. Taught in the chapter *IAF*.
    """

    container = True

    def __init__(
        self,
        steps: Sequence[GatedInverseAutoregressive],
        latent_features: int,
        h_features: int,
    ) -> None:
        super().__init__()
        self.latent_features = check_positive_int(latent_features, "latent_features")
        self.h_features = check_positive_int(h_features, "h_features")
        self.steps = nn.ModuleList(steps)

    def split(self, context: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        r"""Split the encoder's output into :math:`\mu`, :math:`\log\sigma` and :math:`h`."""
        latent = self.latent_features
        mu, log_sigma, h = context.split([latent, latent, self.h_features], dim=1)
        return mu, log_sigma, h

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        mu, log_sigma, h = self.split(context)
        z = mu + log_sigma.exp() * z  # z_0 = mu + sigma * epsilon
        log_abs_det = log_sigma.sum(dim=1)
        for step in self.steps:
            z, step_log_abs_det = step.inverse(z, context=h)
            log_abs_det = log_abs_det + step_log_abs_det
        return z, log_abs_det

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        mu, log_sigma, h = self.split(context)
        log_abs_det = -log_sigma.sum(dim=1)
        for step in reversed(self.steps):
            x, step_log_abs_det = step(x, context=h)
            log_abs_det = log_abs_det + step_log_abs_det
        return (x - mu) * torch.exp(-log_sigma), log_abs_det

    @property
    def context_features(self) -> int:
        r"""The size of the context, :math:`(\mu, \log\sigma, h)` concatenated."""
        return 2 * self.latent_features + self.h_features

    def check_input(self, x: object, inverse: bool = False, context: Tensor | None = None) -> None:
        name = "z" if inverse else "x"
        x = check_matches_module(check_features(x, self.latent_features, name), self, name)
        check_context(context, self.context_features, x.shape[0], self)


class IAFPosterior(Flow):
    r"""An encoder :math:`q(z \mid x)` made of a Gaussian and gated IAF steps (Algorithm 1).

    A conditional flow over latents :math:`z` whose context is the data point :math:`x`.
    Its ``embedding``, the encoder, maps :math:`x` to :math:`(\mu, \log\sigma, h)`; then

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

    It is a :class:`~flowcourse.core.Flow` like any other: ``sample_and_log_prob(n,
    context=x)`` draws one latent per row of ``x`` (repeat the rows for more), with
    reparametrised samples whose gradients reach the encoder and every step;
    ``log_prob(z, context=x)`` scores given latents (slow: every step is inverted, in
    ``latent_features`` passes). The encoder's last layer starts at zero, so a fresh
    posterior starts at :math:`\mathcal{N}(0, I)` pushed through near-identity steps.
    Taught in the chapter *IAF*.

    Arguments:
        data_features: size of one data vector :math:`x` (the flow's context).
        latent_features: size of one latent :math:`z`.
        hidden_features: width of the encoder's and of every MADE's hidden layers (a
            MADE with a context needs at least ``latent_features`` units).
        num_flows: the number :math:`T` of gated IAF steps (0 gives a plain Gaussian
            encoder).
        h_features: size of the encoder's extra output :math:`h` that conditions every
            step (the paper's context).
        seed: fixes the initial weights without touching the global random state.

    Example:
        >>> posterior = IAFPosterior(data_features=4, latent_features=2, num_flows=2)
        >>> x = torch.randn(3, 4)
        >>> z, log_q = posterior.sample_and_log_prob(3, context=x)  # one latent per x
        >>> z.shape, log_q.shape
        (torch.Size([3, 2]), torch.Size([3]))
        >>> torch.allclose(posterior.log_prob(z, context=x), log_q, atol=1e-5)
        True
    """

    def __init__(
        self,
        data_features: int,
        latent_features: int,
        hidden_features: int = 64,
        num_flows: int = 2,
        h_features: int = 16,
        seed: int = 0,
    ) -> None:
        check_positive_int(data_features, "data_features")
        check_positive_int(latent_features, "latent_features")
        check_positive_int(hidden_features, "hidden_features")
        check_positive_int(h_features, "h_features")
        check_int(num_flows, "num_flows", 0)
        with seeded(seed):
            encoder = MLP(data_features, 2 * latent_features + h_features, hidden_features)
        order = natural_order(latent_features)
        steps = [
            GatedInverseAutoregressive(
                latent_features,
                hidden_features=hidden_features,
                order=order if t % 2 == 0 else latent_features + 1 - order,
                seed=seed + 1 + t,
                context_features=h_features,
            )
            for t in range(num_flows)
        ]
        super().__init__(
            IAFPosteriorTransform(steps, latent_features, h_features),
            StandardNormal(latent_features),
            context_features=data_features,
            embedding=encoder,
        )

    @property
    def data_features(self) -> int:
        """The size of one data vector :math:`x`: the flow's context."""
        return self.context_features

    @property
    def latent_features(self) -> int:
        """The size of one latent :math:`z`."""
        return self.transform.latent_features

    @property
    def h_features(self) -> int:
        """The size of the encoder's extra output :math:`h`."""
        return self.transform.h_features

    @property
    def encoder(self) -> nn.Module:
        r"""The encoder network, :math:`x \mapsto (\mu, \log\sigma, h)` (the flow's embedding)."""
        return self.embedding

    @property
    def steps(self) -> nn.ModuleList:
        """The gated IAF steps, in sampling order."""
        return self.transform.steps

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        r"""Return the encoder's ``(mu, log_sigma, h)`` for data ``x`` of shape ``(batch, D)``."""
        x = check_matches_module(check_features(x, self.data_features), self)
        return self.transform.split(self.encoder(x))
