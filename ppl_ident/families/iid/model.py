"""The identifiable VAE (iVAE) and its non-identifiable control, the plain VAE.

Generative model, for observation ``i`` with auxiliary variable ``u_i``::

    z_i | u_i ~ prod_k p(z_ik | u_i)            (factorial; Gaussian, Laplace or a learned shape)
    x_i | z_i ~ Normal(g_theta(z_i), sigma)     (MLP decoder, noise scale learned or fixed)

In the iVAE the location and scale of ``p(z_ik | u)`` are learned functions of ``u``: a table
for integer domain labels, an MLP for continuous ``u``. The shape is fixed (Gaussian, Laplace)
or learned per latent and shared by every ``u``: a generalised normal, or a standardised
Gaussian mixture (``"mixture"``, the exact flow's default), whose location and scale are then
exactly each domain's mean and standard deviation. The VAE uses ``Normal(0, 1)`` for every
``u``, so any rotation of ``z`` fits equally well and its latents are not identifiable.

With an invertible flow ``h`` (``flow=``) the decoder becomes ``h^{-1}``: the noiseless
flow observes ``z = h(x)`` exactly (a point-mass posterior); with ``flow_noise`` the flow gets
a learned Gaussian observation noise, and its latent site is the noise-free observation ``w``
(``z = h(w)``), so that ``z`` has a real posterior.

Both are plain NumPyro functions: ``x=None`` gives the prior predictive; the observation plate
is named ``obs`` and the latent event dimension ``latent`` (the ArviZ dims).

References
----------
Khemakhem, Kingma, Monti & Hyvarinen (2020), "Variational autoencoders and nonlinear ICA: a
unifying framework", AISTATS.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.contrib.module import eqx_module

from ppl_ident.ops.distributions import (GeneralizedNormal, StandardizedMixture,
                                         standardize_mixture)
from ppl_ident.ops.flows import FlowDensity
from ppl_ident.ops.nn import batched
from ppl_ident.ops.observation import (column_scale, noise_param, observation_dist,
                                      residual_log_density, unwhiten, whiten_data,
                                      whiten_log_det)

__all__ = ["ivae", "vae", "prior_params", "prior_shape", "fitted_prior_shape", "flow_likelihood",
           "flow_latent", "noise_fraction", "NOISE_FRACTION_INIT", "PRIORS",
           "MIXTURE_COMPONENTS"]

PRIORS = ("gaussian", "laplace", "generalized", "mixture")

#: Components of each latent's ``"mixture"`` prior shape.
MIXTURE_COMPONENTS = 3
#: The mixture's components start with sds from ``1 / spread`` to ``spread`` (before
#: standardising): a scale mixture, mildly heavier-tailed than a Gaussian.
MIXTURE_SD_SPREAD = 2.0


def _num_obs(x, u, n_obs):
    if n_obs is not None:
        return n_obs
    if u is not None:
        return u.shape[0]
    if x is not None:
        return x.shape[0]
    raise ValueError("pass n_obs when both x and u are None")


def _factorial(prior: str, loc, scale, shape=None):
    if prior == "gaussian":
        return dist.Normal(loc, scale).to_event(1)
    if prior == "laplace":
        return dist.Laplace(loc, scale).to_event(1)
    if prior == "generalized":
        return GeneralizedNormal(loc, scale, shape).to_event(1)
    if prior == "mixture":
        return StandardizedMixture(loc, scale, *shape).to_event(1)
    raise ValueError(f"unknown prior {prior!r}; choose one of {', '.join(PRIORS)}")


def prior_shape(prior: str, n_latent: int):
    """The learned shape of the prior, shared by every ``u``; None for the fixed-shape priors.

    ``"generalized"``: the per-latent shape ``beta`` in ``[1, 4]`` (registered as
    ``prior_shape``, started at 2: Gaussian). ``"mixture"``: each latent's base density, a
    Gaussian mixture of :data:`MIXTURE_COMPONENTS` components standardised to mean 0 and
    variance 1 (registered raw as ``prior_mix_logits``, ``prior_mix_loc`` and ``prior_mix_sd``
    ``(n_latent, K)``, sds in ``[0.05, 5]``; started as a scale mixture with sds 0.5, 1, 2 and
    means -0.2, 0, 0.2), returned standardised as ``(log_w, mu, sigma)``
    (:func:`~ppl_ident.ops.distributions.standardize_mixture`). With the mixture, the
    per-domain ``prior_loc`` / ``prior_scale`` are exactly each domain's mean and sd.
    """
    if prior == "generalized":
        return numpyro.param("prior_shape", jnp.full((n_latent,), 2.0),
                             constraint=dist.constraints.interval(1.0, 4.0))
    if prior == "mixture":
        k = MIXTURE_COMPONENTS
        logits = numpyro.param("prior_mix_logits", jnp.zeros((n_latent, k)))
        means = numpyro.param("prior_mix_loc",
                              jnp.tile(jnp.linspace(-0.2, 0.2, k), (n_latent, 1)))
        sd_init = jnp.geomspace(1.0 / MIXTURE_SD_SPREAD, MIXTURE_SD_SPREAD, k)
        sds = numpyro.param("prior_mix_sd", jnp.tile(sd_init, (n_latent, 1)),
                            constraint=dist.constraints.interval(0.05, 5.0))
        return standardize_mixture(logits, means, sds)
    return None


def fitted_prior_shape(prior: str, params: dict, n_latent: int):
    """:func:`prior_shape` read from a fit's (constrained) parameters."""
    return handlers.substitute(prior_shape, data=dict(params))(prior, n_latent)


def prior_params(u, *, n_latent: int, n_domains: int | None = None, aux_net=None,
                 learn_prior_loc: bool = True):
    """Location and scale of ``p(z | u)``: ``(N, n_latent)`` each.

    Registers the parameters ``prior_loc`` / ``prior_scale`` (tables of shape
    ``(n_domains, n_latent)``) for integer ``u``, or the module ``prior_net`` for continuous
    ``u`` (an MLP from ``u`` to ``2 * n_latent`` outputs: location and log-scale).
    """
    if aux_net is not None:
        net = eqx_module("prior_net", aux_net)
        out = batched(net)(u)
        loc, log_scale = out[..., :n_latent], out[..., n_latent:]
        if not learn_prior_loc:
            loc = jnp.zeros_like(loc)
        return loc, jnp.exp(jnp.clip(log_scale, -10.0, 10.0))
    scale = numpyro.param(
        "prior_scale", jnp.ones((n_domains, n_latent)), constraint=dist.constraints.positive
    )
    if learn_prior_loc:
        loc = numpyro.param("prior_loc", jnp.zeros((n_domains, n_latent)))
    else:
        loc = jnp.zeros((n_domains, n_latent))
    return loc[u], scale[u]


def ivae(x=None, u=None, *, decoder, n_latent: int, data_dim: int, n_domains: int | None = None,
         aux_net=None, prior: str = "gaussian", noise_scale: float | None = None,
         learn_prior_loc: bool = True, subsample_size: int | None = None, n_obs=None,
         whiten=None, noise_init: float = 0.1, flow=None,
         observe_latent: bool = False, flow_noise: bool = False,
         flow_noise_sd: float | None = None):
    """iVAE: factorial prior ``p(z | u)`` with learned parameters, MLP decoder.

    Parameters
    ----------
    x : array ``(N, d)`` or None
        Observations; None samples the prior predictive.
    u : array ``(N,)`` int or ``(N, k)`` float
        Auxiliary variable (domain labels or continuous values). Required.
    decoder : equinox.Module
        Maps one ``z`` of shape ``(n_latent,)`` to ``(d,)``; registered as ``decoder``.
    n_latent, data_dim : int
    n_domains : int, optional
        Number of domain labels (integer ``u``).
    aux_net : equinox.Module, optional
        Prior network for continuous ``u`` (``k -> 2 * n_latent``).
    prior : {"gaussian", "laplace", "generalized", "mixture"}
        ``"generalized"``: a generalised normal whose per-latent shape is learned (Gaussian
        and Laplace are its shapes 2 and 1), for sources of unknown tail weight.
        ``"mixture"``: each latent's shape is a learned Gaussian mixture (heavy tails, skew,
        several modes), moved and scaled per ``u`` (see :func:`prior_shape`).
    noise_scale : float, optional
        Fixed observation noise; None learns a per-dimension positive scale ``noise_scale``.
    learn_prior_loc : bool
        Learn per-domain locations (True) or fix them at 0.
    subsample_size : int, optional
        Minibatch size of the ``obs`` plate.
    whiten : tuple ``(mu (d,), chol (d, d))``, optional
        Decode in whitened coordinates (see :func:`observation_dist`).
    noise_init : float
        Initial value of the learned noise scale.
    flow : CouplingFlow, optional
        The exact-likelihood variant (``d == n``): ``z = h(x)`` with an invertible ``h``
        (:mod:`ppl_ident.ops.flows`) replaces the decoder and its noise; see
        :func:`flow_likelihood`.
    observe_latent : bool
        With ``flow`` and data: compute ``z = h(x)`` here and observe it, so that the model
        alone is ``log p(x | u)`` (to be paired with an empty guide; the flow runs once).
        The same density as the default pairing with the point-mass guide
        :func:`ppl_ident.families.iid.guide.flow_guide`.
    flow_noise : bool
        With ``flow``: the noisy flow. The latent site is the noise-free observation ``w`` (in
        whitened coordinates) with density ``p(h(w) | u) |det J_h(w)|``, and
        ``x ~ Normal(mu + A w, sigma)`` with a learned per-column noise ``sigma`` (a fraction
        ``noise_fraction`` of each column's sd). Its posterior over ``z = h(w)`` is a real
        one (:func:`ppl_ident.families.iid.guide.noisy_flow_guide`); as ``sigma -> 0`` it
        tends to the noiseless flow's point mass.
    flow_noise_sd : float, optional
        With ``flow_noise``: a known noise sd (data units, every column) instead of a learned
        one; ``noise_fraction`` then holds it over each column's sd and is not trained.
    """
    n = _num_obs(x, u, n_obs)
    observe = _observation(decoder, flow, noise_scale, data_dim, noise_init, whiten,
                           observe_latent and x is not None, flow_noise, flow_noise_sd)
    shape = prior_shape(prior, n_latent)
    with numpyro.plate("obs", n, subsample_size=subsample_size) as idx:
        u_b = u[idx]
        loc, scale = prior_params(u_b, n_latent=n_latent, n_domains=n_domains, aux_net=aux_net,
                                  learn_prior_loc=learn_prior_loc)
        observe(_factorial(prior, loc, scale, shape), None if x is None else x[idx])


def vae(x=None, u=None, *, decoder, n_latent: int, data_dim: int, noise_scale=None,
        subsample_size: int | None = None, n_obs=None, whiten=None,
        noise_init: float = 0.1, flow=None, observe_latent: bool = False,
        flow_noise: bool = False, flow_noise_sd: float | None = None, **_unused):
    """Plain VAE: ``z ~ Normal(0, I)`` whatever ``u`` is (the non-identifiable control).

    Accepts and ignores ``u`` so that it is a drop-in replacement for :func:`ivae`; with
    ``flow`` the exact-likelihood control (a flow to a standard normal, rotation-invariant).
    """
    n = _num_obs(x, u, n_obs)
    observe = _observation(decoder, flow, noise_scale, data_dim, noise_init, whiten,
                           observe_latent and x is not None, flow_noise, flow_noise_sd)
    prior = dist.Normal(jnp.zeros(n_latent), 1.0).to_event(1)
    with numpyro.plate("obs", n, subsample_size=subsample_size) as idx:
        observe(prior, None if x is None else x[idx])


def _sample_z(prior, z_obs=None):
    return numpyro.sample("z", prior, obs=z_obs)


def _observation(decoder, flow, noise_scale, data_dim, noise_init, whiten, observe_latent,
                 flow_noise=False, flow_noise_sd=None):
    """Register the observation model's global sites (the decoder and its noise, or the flow,
    and with ``flow_noise`` the flow's noise) and return ``observe(prior, x_b)``:
    inside the ``obs`` plate, it draws the latent site from ``prior`` (``z``, or for the noisy
    flow the noise-free observation ``w`` under :class:`~ppl_ident.ops.flows.FlowDensity`)
    and adds the term for ``x``. With ``observe_latent`` (a noiseless flow and data)
    ``z = h(x)`` is observed and the flow's log-determinant added from the same pass."""
    if flow is not None:
        fl = eqx_module("flow", flow)
        if flow_noise:
            scale = column_scale(whiten, data_dim)
            sigma = noise_fraction(data_dim, None if flow_noise_sd is None
                                   else flow_noise_sd / scale) * scale

            def observe(prior, x_b):
                w = numpyro.sample("w", FlowDensity(prior, fl))
                numpyro.sample("x", dist.Normal(unwhiten(w, whiten), sigma).to_event(1),
                               obs=x_b)

            return observe
        if observe_latent:
            def observe(prior, x_b):
                z, log_det = flow_latent(fl, x_b, whiten)
                _sample_z(prior, z)
                numpyro.factor("x_log_det", log_det)

            return observe
        return lambda prior, x_b: flow_likelihood(fl, _sample_z(prior),
                                                             x_b, whiten)
    dec = eqx_module("decoder", decoder)
    sigma = noise_param(noise_scale, data_dim, noise_init)

    def observe(prior, x_b):
        z = _sample_z(prior)
        numpyro.sample("x", observation_dist(batched(dec)(z), sigma, whiten), obs=x_b)

    return observe


#: The noisy flow's initial observation noise, as a fraction of each column's sd. Started
#: small: on noiseless d = 10 > n = 5 data (seeds 2 and 3) a start at 0.1 cost the fit 0.03
#: MCC against the noiseless flow (0.920 and 0.917 against 0.952 and 0.947) and a start at
#: 0.02 about nothing (0.948, 0.944), while at noise 0.3 x sd it still learned 0.92-0.94 of
#: the true noise.
NOISE_FRACTION_INIT = 0.02


def noise_fraction(data_dim: int, known=None):
    """The noisy flow's observation noise ``(d,)``: each column's noise sd as a fraction of
    that column's sd (registered as ``noise_fraction``; the model's ``sigma`` is it times
    :func:`~ppl_ident.ops.observation.column_scale`). Learned from
    :data:`NOISE_FRACTION_INIT`, or with ``known`` ``(d,)`` held at that value: the parameter
    is still registered, so every reader of a fit finds it, but no gradient reaches it."""
    if known is None:
        return numpyro.param("noise_fraction", jnp.full((data_dim,), NOISE_FRACTION_INIT),
                             constraint=dist.constraints.positive)
    init = jnp.broadcast_to(jnp.asarray(known, jnp.float32), (data_dim,))
    return jax.lax.stop_gradient(numpyro.param("noise_fraction", init,
                                               constraint=dist.constraints.positive))


def flow_likelihood(fl, z, x_b, whiten):
    """The exact model's observation term for ``x`` ``(N, d)``: the prior predictive
    ``x = h^{-1}(z)`` (a deterministic site), or with data the factor ``log |det J_h(x)|`` in
    data coordinates (whitening's Jacobian included).

    With the point-mass guide ``z = h(x)`` (:func:`ppl_ident.families.iid.guide.flow_guide`)
    the ELBO is then exactly ``log p(x | u) = log p(h(x) | u) + log |det J_h(x)|``. For
    ``d > n`` the flow reads the whitened top-``n`` principal components of ``x`` and the
    remaining ``d - n`` directions are scored as isotropic Gaussian noise
    (:func:`ppl_ident.ops.observation.whitening` with ``n_components``), so the objective is
    still a density on ``x``.
    """
    if x_b is None:
        # (with a principal-component map, the draws lie on its range: the residual's
        # isotropic noise is not drawn)
        numpyro.deterministic("x", unwhiten(jax.vmap(fl.inverse)(z), whiten))
        return
    numpyro.factor("x_log_det", flow_latent(fl, x_b, whiten)[1])


def flow_latent(fl, x_b, whiten):
    """``z = h(x)`` for observations ``x`` ``(N, d)`` and the observation term of the exact
    model: ``log |det J_h|`` in data coordinates (whitening's Jacobian included) plus, for
    ``d > n``, the residual directions' Gaussian log-density."""
    z, log_det = jax.vmap(fl)(whiten_data(x_b, whiten))
    return z, log_det + whiten_log_det(whiten) + residual_log_density(x_b, whiten)
