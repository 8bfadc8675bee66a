"""Inference engines as pure ``init``/``step`` pairs, and their registries.

An :class:`Engine` is three pure functions over an explicit state::

    state = engine.init(key, x, u)
    state, info = engine.step(state, x, u)      # info: StepInfo(loss, finite)
    params = engine.get_params(state)

``step`` never raises inside ``jit``: a step whose loss or gradients are not finite, or whose
update would make a parameter non-finite, leaves the parameters and optimiser state unchanged
(the RNG key still advances) and reports ``finite=False`` (NumPyro's ``SVI.stable_update`` plus
a check of the updated parameters).

A new ELBO is one entry in :data:`ELBOS`; a new engine one entry in :data:`ENGINES`.
Engines in :data:`SAMPLER_ENGINES` fit nothing: they draw ``z`` with the parameters of a
fitted model held fixed (``init`` takes them), and the comparison harness gives them a base fit.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from numpyro import handlers
from numpyro.infer import SVI, RenyiELBO, Trace_ELBO, TraceMeanField_ELBO
from numpyro.optim import optax_to_numpyro
from numpyro.primitives import Messenger

from ppl_ident.errors import InputError
from ppl_ident.families.guides import guide_family
from ppl_ident.inference.sharding import check_batch_size, constrain_batch
from ppl_ident.inference.subsample import minibatch_map
from ppl_ident.families import ModelSpec

__all__ = ["ELBOS", "ENGINES", "SAMPLER_ENGINES", "Engine", "StepInfo", "OptimConfig",
           "make_elbo", "svi_engine", "iwae_engine", "build_engine",
           "make_optimizer", "fold_plate"]

ELBOS: dict[str, Callable] = {
    "Trace_ELBO": Trace_ELBO,
    "TraceMeanField_ELBO": TraceMeanField_ELBO,
    # alpha=0 is the importance-weighted (IWAE) bound with num_particles samples; NumPyro
    # computes it per observation and allows subsampling only in plates that hold every sample
    # site (our ``obs`` plate holds ``z`` and ``x``).
    "RenyiELBO": RenyiELBO,
}


class StepInfo(NamedTuple):
    """Per-step diagnostics; never fed back into the state."""

    loss: jax.Array
    finite: jax.Array


class OptimConfig(NamedTuple):
    """Adam with global-norm clipping and a warm-up + cosine-decay learning rate."""

    learning_rate: float = 3e-3
    num_steps: int = 4000
    warmup_steps: int = 200
    end_fraction: float = 0.02
    clip_norm: float = 10.0


class Engine(NamedTuple):
    """A named inference algorithm bound to one model.

    Attributes
    ----------
    name : str
    init : ``(key, x, u) -> state``
        Samplers (:data:`SAMPLER_ENGINES`) take the fixed parameters as well:
        ``(key, x, u, params=None) -> state``.
    step : ``(state, x, u) -> (state, StepInfo)``
    get_params : ``state -> dict`` of constrained parameters
    evaluate : ``(key, params, x, u) -> loss``
        Full-data negative ELBO (several particles), used to choose among restarts.
    spec : ModelSpec
    config : dict
        The engine's options as recorded in a run's metrics (JSON-able); the fit loop reads
        the typed fields below, never this dict.
    devices : int
        Devices each step's minibatch is split over (data parallel; 1: no mesh).
    rows_additive : bool
        ``evaluate`` sums independent per-row terms of the rows it is given, so the fit may
        score restarts on chunks of a subset (False: per-row guide parameters index the full
        data).
    num_steps : int, optional
        The engine's own number of steps (a sampler's warm-up plus draws); None: the caller's.
    """

    name: str
    init: Callable
    step: Callable
    get_params: Callable
    evaluate: Callable
    spec: ModelSpec
    config: dict
    devices: int = 1
    rows_additive: bool = False
    num_steps: int | None = None


def make_elbo(name: str, num_particles: int = 1, **kwargs):
    """Instantiate an ELBO from :data:`ELBOS` by name."""
    if name not in ELBOS:
        raise InputError(f"Unknown ELBO {name!r}; valid ELBOs: {', '.join(sorted(ELBOS))}.")
    return ELBOS[name](num_particles=num_particles, **kwargs)


def make_optimizer(cfg: OptimConfig):
    """The optax chain behind every SVI engine: clip, then Adam on a schedule."""
    warmup = max(0, min(cfg.warmup_steps, cfg.num_steps - 1))
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=cfg.learning_rate * 0.01,
        peak_value=cfg.learning_rate,
        warmup_steps=warmup,
        decay_steps=max(cfg.num_steps, warmup + 1),
        end_value=cfg.learning_rate * cfg.end_fraction,
    )
    return optax.chain(optax.clip_by_global_norm(cfg.clip_norm), optax.adam(schedule))


class fold_plate(Messenger):
    """Fold the plate ``name`` (the rightmost batch dimension) into every site's event.

    The sites keep their shapes, but the plate's dimension becomes part of each site's event
    (``fn.to_event(1)``) and leaves its independence frames. An ELBO then sums the
    log-densities over that dimension first: for :class:`~numpyro.infer.RenyiELBO`, whose
    importance weights are per element of the plates shared by all sites, the sequence
    models' ``time`` steps are summed inside one weight per sequence instead of being weighted
    as if they were independent.
    """

    def __init__(self, fn=None, name: str = "time"):
        self.name = name
        super().__init__(fn)

    def process_message(self, msg):
        # runs after the model's own plates (inner handlers) have broadcast the site
        if msg["type"] != "sample" or not msg.get("cond_indep_stack"):
            return
        frames = [f for f in msg["cond_indep_stack"] if f.name == self.name]
        if not frames:
            return
        if frames[0].dim != -1:
            raise ValueError(f"fold_plate needs {self.name!r} to be the rightmost plate "
                             f"(dim -1), got dim {frames[0].dim}")
        msg["fn"] = msg["fn"].to_event(1)
        # the remaining plates sit one batch dimension further right
        msg["cond_indep_stack"] = [f._replace(dim=f.dim + 1) for f in msg["cond_indep_stack"]
                                   if f.name != self.name]


def _minibatched(fn, plate: str):
    """Wrap a model or guide so that a ``batch_idx`` argument selects the minibatch of its
    ``plate`` (substituted into the plate's subsample), scaled by NumPyro as usual."""

    def wrapped(*args, batch_idx=None, **kwargs):
        if batch_idx is None:
            return fn(*args, subsample_size=None, **kwargs)
        with handlers.substitute(data={plate: batch_idx}):
            return fn(*args, subsample_size=batch_idx.shape[0], **kwargs)

    return wrapped


def svi_engine(spec: ModelSpec, *, elbo: str = "Trace_ELBO", num_particles: int = 1,
               batch_size: int | None = 256, optim: OptimConfig = OptimConfig(),
               eval_particles: int = 4, name: str | None = None, mesh=None) -> Engine:
    """Stochastic variational inference with the model's amortised guide.

    Parameters
    ----------
    spec : ModelSpec
    elbo : str
        A name in :data:`ELBOS`.
    num_particles : int
        Monte Carlo samples of the ELBO per step.
    batch_size : int or None
        Minibatch size (the ``obs`` plate's ``subsample_size``); None uses all data.
    optim : OptimConfig
    eval_particles : int
        Particles of the full-data ELBO used by ``evaluate``.
    mesh : jax.sharding.Mesh, optional
        Split every step's minibatch over the mesh's devices (data parallel, see
        :mod:`ppl_ident.inference.sharding`); ``batch_size`` must be a multiple of its size.
    """
    check_batch_size(batch_size, mesh)
    guide_name = spec.guide_name
    family = guide_family(guide_name)
    if family.elbos is not None and elbo not in family.elbos:
        raise InputError(f"The {guide_name!r} guide works only with {', '.join(family.elbos)}; "
                         f"got elbo={elbo!r}.")
    plate = spec.batch_plate
    # a cheaper pair with the same ELBO where the model has one (the exact flow models)
    model_fn, guide_fn = spec.objective or (spec.model, spec.guide)
    if elbo == "RenyiELBO":
        # RenyiELBO takes one importance weight per element of every plate shared by all
        # sites. Plates whose elements are not independent (a sequence's "time" steps: z_t's
        # prior depends on z_{t-1}) need one weight per element of the batch plate: hide them
        # from the ELBO, and their log-densities are summed before the log-mean-exp.
        for inner in spec.weight_plates:
            model_fn, guide_fn = fold_plate(model_fn, inner), fold_plate(guide_fn, inner)
    loss = make_elbo(elbo, num_particles)
    model, guide = _minibatched(model_fn, plate), _minibatched(guide_fn, plate)
    svi = SVI(model, guide, optax_to_numpyro(make_optimizer(optim)), loss)
    eval_loss = make_elbo(elbo, eval_particles)

    def indices(key, x):
        # Minibatches drawn with replacement: O(batch) per step, where NumPyro's default
        # without-replacement draw on CPU is a sequential shuffle costing milliseconds per step
        # (measured: 2.9 ms vs 0.24 ms at batch 512 of 40,000).
        n = x.shape[0]
        if batch_size is None or batch_size >= n:
            return None
        return constrain_batch(jax.random.randint(key, (batch_size,), 0, n), mesh)

    def init(key, x, u):
        k_init, k_params, k_idx = jax.random.split(key, 3)
        return svi.init(k_init, x, u, batch_idx=indices(k_idx, x),
                        init_params=spec.init_params(k_params))

    def step(state, x, u):
        idx = indices(jax.random.fold_in(state.rng_key, 1), x)
        new, loss_value = svi.stable_update(state, x, u, batch_idx=idx)
        # stable_update checks the loss and gradients, not where the update lands: a huge step
        # can overflow a constrained parameter (exp of a scale). Keep the last finite ones.
        ok = jnp.isfinite(loss_value) & _all_finite(svi.get_params(new))
        old = state._replace(rng_key=new.rng_key)
        new = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)
        return new, StepInfo(jnp.where(ok, loss_value, jnp.nan), ok)

    def evaluate(key, params, x, u):
        return eval_loss.loss(key, params, model_fn, guide_fn, x, u, subsample_size=None)

    if not family.full_data:
        def evaluate(key, params, x, u):
            # The guide only runs on subsamples of a fixed size: average the minibatch
            # estimates of the full-data loss over fixed batches that cover every observation.
            def one(key, idx):
                with handlers.substitute(data={plate: idx}):
                    return eval_loss.loss(key, params, model_fn, guide_fn, x, u,
                                          subsample_size=idx.shape[0])

            return minibatch_map(one, key, x.shape[0], batch_size or x.shape[0]).mean()

    config = dict(engine=name or "svi", elbo=elbo, num_particles=num_particles,
                  batch_size=batch_size, **optim._asdict(),
                  devices=1 if mesh is None else int(mesh.devices.size),
                  rows_additive=bool(family.full_data))
    return Engine(name or "svi", init, step, svi.get_params, evaluate, spec, config,
                  devices=config["devices"], rows_additive=config["rows_additive"])


def _all_finite(tree):
    leaves = [jnp.all(jnp.isfinite(a)) for a in jax.tree_util.tree_leaves(tree)
              if jnp.issubdtype(jnp.result_type(a), jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def iwae_engine(spec: ModelSpec, *, num_particles: int = 8, elbo: str = "RenyiELBO",
                **kwargs) -> Engine:
    """SVI on the importance-weighted bound: ``RenyiELBO(alpha=0)`` with K = ``num_particles``.

    References
    ----------
    Burda, Grosse & Salakhutdinov (2016), "Importance weighted autoencoders", ICLR.
    Li & Turner (2016), "Renyi divergence variational inference", NeurIPS.
    """
    if elbo != "RenyiELBO":
        raise InputError(f"The iwae engine uses RenyiELBO; got elbo={elbo!r}. Use --engine svi "
                         "for other ELBOs.")
    return svi_engine(spec, elbo="RenyiELBO", num_particles=num_particles,
                      name=kwargs.pop("name", "iwae"), **kwargs)


ENGINES: dict[str, Callable] = {
    "svi": svi_engine,
    "iwae": iwae_engine,
    # "nuts" (NUTS on z with the decoder fixed: the reference posterior) registers itself in
    # ppl_ident.inference.nuts, which the package imports with this module
}

#: Engines that sample ``z`` of a fitted model (``init(key, x, u, params)``) instead of
#: fitting one; ``ppl-ident fit`` does not offer them.
SAMPLER_ENGINES = frozenset({"nuts"})


def build_engine(name: str, spec: ModelSpec, **kwargs) -> Engine:
    """Build a registered engine by name; unknown names list the valid ones."""
    if name not in ENGINES:
        raise InputError(f"Unknown engine {name!r}; valid engines: {', '.join(sorted(ENGINES))}.")
    return ENGINES[name](spec, **kwargs)
