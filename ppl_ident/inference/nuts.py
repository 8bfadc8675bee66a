"""Reference posterior of the local latents: NUTS on ``z`` with the fitted model held fixed.

The amortised Gaussian guide is a fast but approximate posterior. NUTS keeps the fitted
decoder, prior and noise scale fixed (substituted into the model) and samples
``p(z_i | x_i, u_i, theta_hat)`` for a set of observations, with several chains so that
split-R-hat and effective sample size are meaningful. Comparing its intervals with the
guide's on the same observations measures how far the amortised approximation is from the
posterior of the fitted model (not from the true latents: that is what calibration against
``z`` measures).

Two entry points:

- :func:`nuts_latents` runs NumPyro's ``MCMC`` once for a fitted model (the report). The
  observations' latents are sampled jointly (one ``N * n``-dimensional target) with a diagonal
  mass matrix, which adapts one scale per latent coordinate.
- :func:`nuts_engine` is the sampler as an :class:`~ppl_ident.inference.engines.Engine` of
  pure ``init``/``step`` functions, so that the comparison harness runs it like the SVI
  engines (seeds vectorised with ``vmap``, ``lax.scan`` chunks in
  :func:`~ppl_ident.inference.fit_batched`). Given ``theta_hat`` the latents of different
  observations are independent, so the engine runs one small NUTS sampler per observation
  and chain (``vmap``-ed): each adapts its own step size and, by default, a dense ``n x n``
  mass matrix, which matters when the decoder's Jacobian correlates the latents of one
  observation. One ``step`` is one NUTS transition of every sampler; the first
  ``num_warmup`` steps adapt (NumPyro's windowed adaptation inside its ``sample_kernel``) and
  are discarded, the next ``num_samples`` are written into the state.

  The engine samples ``z`` under the parameters of a *base* fit: given when it is built
  (``nuts_engine(spec, params=...)``) or per seed to ``init(key, x, u, params)``. The
  comparison harness fits the ``base`` engine preset (default ``svi``) with the same seed and
  settings, then samples the latents of a fixed subset of observations.

References
----------
Hoffman & Gelman (2014), "The No-U-Turn Sampler", JMLR 15.
Vehtari, Gelman, Simpson, Carpenter & Buerkner (2021), "Rank-normalization, folding, and
localization: an improved R-hat", Bayesian Analysis.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import MCMC, NUTS, Predictive, Trace_ELBO
from numpyro.infer.hmc import hmc
from numpyro.infer.util import ParamInfo, log_density

from ppl_ident.errors import InputError
from ppl_ident.families.guides import guide_family
from ppl_ident.inference.engines import ENGINES, Engine, StepInfo
from ppl_ident.families.predict import LatentDraws, fitted_model

__all__ = ["NutsState", "check_nuts_options", "nuts_engine", "nuts_latents"]

# NumPyro extra field -> ArviZ sample_stats name
_STATS = {"diverging": "diverging", "num_steps": "n_steps", "accept_prob": "acceptance_rate",
          "energy": "energy", "potential_energy": "lp"}


def nuts_latents(spec, params, x, u, *, key, num_warmup: int = 300, num_samples: int = 300,
                 num_chains: int = 4, target_accept_prob: float = 0.8,
                 max_tree_depth: int = 10, init_from_guide: bool = True,
                 chain_method: str = "vectorized", **_unused) -> LatentDraws:
    """Sample ``p(z | x, u, theta_hat)`` with NUTS, the fitted parameters held fixed.

    Parameters
    ----------
    spec : ModelSpec
    params : dict
        Fitted (constrained) parameters; substituted into the model, never re-initialised.
    x : array ``(N, d)``
        The observations whose latents are sampled (keep ``N`` small: tens).
    u : array ``(N,)`` or ``(N, k)``
    key : PRNG key
    num_warmup, num_samples, num_chains : int
    target_accept_prob : float
    max_tree_depth : int
    init_from_guide : bool
        Start each chain at its own draw from the guide (dispersed, and close to the
        posterior mass, which shortens warm-up); otherwise NumPyro's default ``init_to_uniform``.
    chain_method : {"vectorized", "sequential", "parallel"}
        ``"vectorized"`` runs the chains as one batched program (best on a CPU).

    Returns
    -------
    LatentDraws
        ``z`` ``(num_chains, num_samples, N, n)`` and sample stats ``(num_chains, num_samples)``
        (``diverging``, ``n_steps``, ``acceptance_rate``, ``energy``, ``lp``).

    Examples
    --------
    >>> draws = nuts_latents(fitted.spec, fitted.params, x[:10], u[:10],   # doctest: +SKIP
    ...                      key=jax.random.PRNGKey(0), num_chains=4)
    >>> draws.z.shape                                                         # doctest: +SKIP
    (4, 300, 10, n)
    """
    for name, value in [("num_warmup", num_warmup), ("num_samples", num_samples),
                        ("num_chains", num_chains)]:
        if int(value) != value or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}.")
    if num_chains < 2:
        raise InputError("Use num_chains >= 2 so that R-hat can detect chains that disagree.")
    if spec.latents != "posterior":
        raise InputError("NUTS samples the latents z of the variational models (--no-flow). The "
                         "noiseless flow's z = h(x) is a point with nothing to sample, and the "
                         "noisy flow's latent is its noise-free observation w, which this "
                         "sampler does not sample yet: use the noisy flow's own posterior "
                         "(posterior.nc), or fit --no-flow for a NUTS reference.")
    t0 = time.perf_counter()
    x = jnp.asarray(x)
    u = None if u is None else jnp.asarray(u)
    k_init, k_run = jax.random.split(key)
    init_params = None
    if init_from_guide:
        z0 = Predictive(spec.guide, params=params, num_samples=num_chains,
                        return_sites=["z"])(k_init, x, u)["z"]
        init_params = {"z": z0}
    kernel = NUTS(fitted_model(spec, params), target_accept_prob=target_accept_prob,
                  max_tree_depth=max_tree_depth)
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                chain_method=chain_method, progress_bar=False)
    mcmc.run(k_run, x, u, init_params=init_params, extra_fields=tuple(_STATS))
    z = np.asarray(mcmc.get_samples(group_by_chain=True)["z"])
    extra = mcmc.get_extra_fields(group_by_chain=True)
    stats = {_STATS[k]: np.asarray(v) for k, v in extra.items() if k in _STATS}
    if "lp" in stats:
        stats["lp"] = -stats["lp"]
    config = dict(num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                  target_accept_prob=target_accept_prob, max_tree_depth=max_tree_depth,
                  init_from_guide=init_from_guide, chain_method=chain_method)
    return LatentDraws(z, stats, "nuts", time.perf_counter() - t0, config)


def _positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def check_nuts_options(*, num_warmup: int = 300, num_samples: int = 300, num_chains: int = 4,
                       target_accept_prob: float = 0.8, max_tree_depth: int = 10,
                       **_others) -> None:
    """Validate the options of :func:`nuts_engine` (raises :class:`InputError`).

    The comparison harness calls it when a grid is built, so that a bad option stops the grid
    before any fitting, not after the base fit.
    """
    _positive_int("num_warmup", num_warmup)
    _positive_int("num_samples", num_samples)
    if isinstance(num_chains, (int, np.integer)) and not isinstance(num_chains, bool) \
            and num_chains == 1:
        raise InputError("Use num_chains >= 2 so that R-hat can detect chains that disagree.")
    _positive_int("num_chains", num_chains, 2)
    _positive_int("max_tree_depth", max_tree_depth)
    if not isinstance(target_accept_prob, (int, float)) or not 0 < target_accept_prob < 1:
        raise InputError(f"target_accept_prob must be in (0, 1), got {target_accept_prob!r}.")


class NutsState(NamedTuple):
    """State of :func:`nuts_engine` (one seed; ``fit_batched`` adds a leading seed axis).

    Attributes
    ----------
    kernel : numpyro.infer.hmc.HMCState
        One NUTS sampler per chain and observation, adaptation state included: leaves
        ``(C * N, ...)``, chain-major (sampler ``c * N + i`` is chain ``c`` of observation
        ``i``; one flat ``vmap`` traces and compiles faster than nested ones).
    params : dict
        The fixed (constrained) parameters whose posterior of ``z`` is sampled.
    z : array ``(C, S, N, n)``
        Post-warm-up draws; slot ``s`` is written by step ``num_warmup + s`` (zeros before).
    diverging, accept_prob, tree_size : arrays ``(C, S, N)``
        Per-draw sampler statistics (``tree_size``: leapfrog steps of the transition).
    step : int
        Transitions done.
    """

    kernel: object
    params: dict
    z: jax.Array
    diverging: jax.Array
    accept_prob: jax.Array
    tree_size: jax.Array
    step: jax.Array


def _potential_gen(spec):
    """``(x_i, u_i, params) -> (z_i -> -log p(x_i, z_i | u_i, params))`` for one observation.

    Built lazily from its arguments (NumPyro's ``potential_fn_gen``): the sampler regenerates
    it from the arguments of every ``sample_kernel`` call, so nothing traced in ``init`` is
    captured and reused by ``step``.
    """

    def gen(x_i, u_i, params):
        def potential(z_i):
            model = fitted_model(spec, params)
            args = (x_i[None], None if u_i is None else u_i[None])
            log_joint, _ = log_density(model, args, {}, {"z": z_i[None]})
            return -log_joint

        return potential

    return gen


def nuts_engine(spec, *, params: dict | None = None, num_warmup: int = 300,
                num_samples: int = 300, num_chains: int = 4, target_accept_prob: float = 0.8,
                max_tree_depth: int = 10, dense_mass: bool = True, init_from_guide: bool = True,
                eval_particles: int = 4, name: str | None = None):
    """NUTS on ``z`` with a fitted model's parameters fixed, as an init/step engine.

    ``init(key, x, u, params=None) -> NutsState`` and ``step(state, x, u) -> (state,
    StepInfo)``, both pure, with ``x``, ``u`` the observations whose latents are sampled
    (keep them to a few hundred: every observation gets ``num_chains`` samplers). Run
    ``num_warmup + num_samples`` steps (``engine.num_steps``, the default of
    :func:`~ppl_ident.inference.fit`); the draws are then ``state.z``. Steps beyond that
    continue the chains without recording.

    Parameters
    ----------
    spec : ModelSpec
        An i.i.d. model (``obs`` plate) whose only latent site is ``z``, with an amortised guide
        (it draws the chains' starting points and defines ``evaluate``).
    params : dict, optional
        Fixed parameters for every ``init``; ``init`` may instead receive them (per seed).
    num_warmup, num_samples, num_chains : int
        Adaptation transitions (discarded), recorded draws, chains per observation (>= 2).
    target_accept_prob : float
        Target of the step-size adaptation (dual averaging).
    max_tree_depth : int
        At most ``2 ** max_tree_depth - 1`` leapfrog steps per transition.
    dense_mass : bool
        Adapt a dense ``n x n`` inverse mass matrix per observation (else diagonal).
    init_from_guide : bool
        Start every chain at its own guide draw (dispersed, near the posterior mass); else at a
        prior draw.
    eval_particles : int
        Particles of ``evaluate`` (the fixed model's negative ELBO under its guide; the same
        for every restart, since nothing is fitted: :func:`~ppl_ident.inference.fit` keeps
        restart 0 and returns all in ``states``).

    Returns
    -------
    Engine
        ``config["kind"] == "sampler"``; ``get_params`` returns the fixed parameters.

    Examples
    --------
    >>> engine = nuts_engine(fitted.spec, params=fitted.params, num_warmup=200,  # doctest: +SKIP
    ...                      num_samples=200)
    >>> res = fit(engine, jax.random.PRNGKey(0), x[:50], u[:50], progress=False)  # doctest: +SKIP
    >>> res.state.z.shape                                                       # doctest: +SKIP
    (4, 200, 50, n)

    References
    ----------
    Hoffman & Gelman (2014), "The No-U-Turn Sampler", JMLR 15 (dual averaging, Sec. 3.2).
    Stan Reference Manual, "HMC algorithm parameters" (the windowed adaptation NumPyro uses).
    """

    check_nuts_options(num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                       target_accept_prob=target_accept_prob, max_tree_depth=max_tree_depth)
    _positive_int("eval_particles", eval_particles)
    for label, flag in (("dense_mass", dense_mass), ("init_from_guide", init_from_guide)):
        if not isinstance(flag, bool):
            raise InputError(f"{label} must be True or False, got {flag!r}.")
    if spec.batch_plate != "obs":
        raise InputError(f"The nuts engine samples the latents of i.i.d. models (ivae, vae); "
                         f"{spec.name!r} has sequence latents. Use ppl-ident report for it.")
    guide = spec.guide_name
    if not guide_family(guide).full_data:
        raise InputError(f"The nuts engine starts its chains from an amortised guide; the "
                         f"{guide!r} guide has none. Fit the base with guide 'encoder' or "
                         "'encoder_fullcov'.")
    fixed = params
    init_kernel, sample_kernel = hmc(potential_fn_gen=_potential_gen(spec), algo="NUTS")
    kernel_options = dict(dense_mass=dense_mass, target_accept_prob=target_accept_prob,
                          max_tree_depth=max_tree_depth)
    # NumPyro's functional hmc() keeps its configuration (warm-up length, adapter, tree depth)
    # in closure variables that init_kernel sets. Setting them now, on a dummy position with
    # its potential given (nothing is evaluated), lets `step` be traced without `init` having
    # run in this process (a state restored from disk). The adapter must not capture the
    # potential, so NumPyro's heuristic step-size search stays off (its default).
    init_kernel(ParamInfo(jnp.zeros(1), jnp.zeros(()), jnp.zeros(1)), num_warmup,
                model_args=(None, None, None), rng_key=jax.random.PRNGKey(0), **kernel_options)

    def initial_z(key, x, u, params):
        if init_from_guide:
            fn, kw = spec.guide, {"params": params}
        else:  # x is observed in the model: its z site draws from the prior p(z | u)
            fn, kw = fitted_model(spec, params), {}
        return Predictive(fn, num_samples=num_chains, return_sites=["z"], **kw)(key, x, u)["z"]

    def lanes(x, u):
        # the data of every sampler, chain-major (see NutsState.kernel)
        def tile(a):
            return None if a is None else jnp.tile(a, (num_chains,) + (1,) * (a.ndim - 1))

        return tile(x), tile(u)

    def init(key, x, u, params=None):
        params = fixed if params is None else params
        if params is None:
            raise InputError("The nuts engine samples z under fitted parameters: build it "
                             "with nuts_engine(spec, params=...) or pass init(key, x, u, "
                             "params).")
        k_z, k_kernel = jax.random.split(key)
        z0 = initial_z(k_z, x, u, params)
        n_obs = x.shape[0]
        keys = jax.random.split(k_kernel, num_chains * n_obs)

        def one(z_i, key_i, x_i, u_i):
            return init_kernel(z_i, num_warmup, model_args=(x_i, u_i, params), rng_key=key_i,
                               **kernel_options)

        kernel = jax.vmap(one)(z0.reshape(num_chains * n_obs, -1), keys, *lanes(x, u))
        shape = (num_chains, num_samples, n_obs)
        return NutsState(kernel, params, jnp.zeros(shape + z0.shape[-1:], z0.dtype),
                         jnp.zeros(shape, bool), jnp.zeros(shape, z0.dtype),
                         jnp.zeros(shape, jnp.int32), jnp.zeros((), jnp.int32))

    def step(state, x, u):
        def one(kernel_i, x_i, u_i):
            return sample_kernel(kernel_i, model_args=(x_i, u_i, state.params))

        kernel = jax.vmap(one)(state.kernel, *lanes(x, u))
        # warm-up transitions write to slot num_samples, out of range: dropped
        slot = jnp.where(state.step >= num_warmup, state.step - num_warmup, num_samples)

        def record(buffer, value):
            value = value.reshape(num_chains, x.shape[0], *value.shape[1:])
            return buffer.at[:, slot].set(value.astype(buffer.dtype), mode="drop")

        new = NutsState(kernel, state.params, record(state.z, kernel.z),
                        record(state.diverging, kernel.diverging),
                        record(state.accept_prob, kernel.accept_prob),
                        record(state.tree_size, kernel.num_steps), state.step + 1)
        energy = kernel.potential_energy  # -log p(x_i, z_i | u_i) of each sampler
        return new, StepInfo(energy.sum() / num_chains, jnp.all(jnp.isfinite(energy)))

    elbo = Trace_ELBO(num_particles=eval_particles)

    def evaluate(key, params, x, u):
        return elbo.loss(key, params, spec.model, spec.guide, x, u)

    config = dict(engine=name or "nuts", kind="sampler", num_warmup=num_warmup,
                  num_samples=num_samples, num_chains=num_chains,
                  num_steps=num_warmup + num_samples, target_accept_prob=target_accept_prob,
                  max_tree_depth=max_tree_depth, dense_mass=dense_mass,
                  init_from_guide=init_from_guide)
    return Engine(name or "nuts", init, step, lambda state: state.params, evaluate, spec, config,
                  num_steps=num_warmup + num_samples)


# the sampler engine's registry entry (engines.py cannot import this module: it imports it)
ENGINES["nuts"] = nuts_engine
