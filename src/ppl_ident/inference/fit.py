"""The fit loop: jit-compiled chunks of ``lax.scan`` steps, restarts vectorised with ``vmap``.

Restarts (or seeds) of one engine run as a single vectorised program: on a CPU the small
matrix products of one fit leave most of the machine idle, so ``R`` restarts cost far less
than ``R`` fits. The restart with the best full-data ELBO is selected; true latents are never
looked at.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ppl_ident.inference.engines import Engine

__all__ = ["FitResult", "fit", "fit_batched"]


class FitResult(NamedTuple):
    """Outcome of :func:`fit` (leading restart axis on every array in :func:`fit_batched`).

    Attributes
    ----------
    params : dict
        Constrained parameters of the selected restart.
    state : pytree
        The engine's final state of the selected restart (optimiser state included).
    losses : ``(num_steps,)``
        Per-step training loss (negative ELBO of a minibatch, scaled to the full data).
    num_skipped : int
        Steps skipped because the loss or gradients were not finite.
    final_loss : float
        Full-data negative ELBO at the end (the selection criterion).
    restart_losses : ``(R,)``
        ``final_loss`` of every restart.
    selected : int
        Index of the selected restart.
    compile_time, run_time : float
        Seconds spent compiling and running (run time excludes compilation).
    """

    params: dict
    state: object
    losses: np.ndarray
    num_skipped: int
    final_loss: float
    restart_losses: np.ndarray
    selected: int
    compile_time: float
    run_time: float


def _chunk_fn(engine: Engine, length: int):
    def run_chunk(states, x, u):
        def body(states, _):
            states, info = jax.vmap(engine.step, in_axes=(0, None, None))(states, x, u)
            return states, info

        return jax.lax.scan(body, states, None, length=length)

    return jax.jit(run_chunk, donate_argnums=0)


def fit_batched(engine: Engine, keys, x, u, num_steps: int, *, chunk_size: int = 500,
                progress: bool = True, state=None, start_step: int = 0, callback=None):
    """Run ``len(keys)`` independent fits of one engine as one vectorised program.

    Parameters
    ----------
    engine : Engine
    keys : ``(R, 2)`` PRNG keys, one per restart/seed.
    x, u : arrays (passed to the model and guide).
    num_steps : int
        Total number of optimisation steps.
    chunk_size : int
        Steps per compiled ``lax.scan`` chunk (progress is reported between chunks).
    progress : bool
        Show a progress bar with the current loss.
    state : pytree, optional
        A batched state to continue from (resume), with ``start_step`` steps already done.
    callback : callable, optional
        ``callback(step, states)`` after each chunk; return True to stop early.

    Returns
    -------
    states, losses ``(R, steps_run)``, finite ``(R, steps_run)``, compile_time, run_time
    """
    x, u = jnp.asarray(x), None if u is None else jnp.asarray(u)
    t0 = time.perf_counter()
    if state is None:
        state = jax.jit(jax.vmap(engine.init, in_axes=(0, None, None)))(keys, x, u)
        jax.block_until_ready(state)
    remaining = num_steps - start_step
    sizes = [chunk_size] * (remaining // chunk_size)
    if remaining % chunk_size:
        sizes.append(remaining % chunk_size)
    compiled = {}
    for length in set(sizes):
        compiled[length] = _chunk_fn(engine, length).lower(state, x, u).compile()
    compile_time = time.perf_counter() - t0

    losses, finite = [], []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=remaining, desc=f"{engine.spec.name}/{engine.name}", unit="step",
                   leave=False)
    step = start_step
    t1 = time.perf_counter()
    try:
        for length in sizes:
            state, info = compiled[length](state, x, u)
            loss_chunk = np.asarray(info.loss).T
            losses.append(loss_chunk)
            finite.append(np.asarray(info.finite).T)
            step += length
            if bar is not None:
                bar.update(length)
                bar.set_postfix(loss=f"{np.nanmin(loss_chunk[:, -1]):.4g}")
            if callback is not None and callback(step, state):
                break
    finally:
        if bar is not None:
            bar.close()
    jax.block_until_ready(state)
    run_time = time.perf_counter() - t1
    losses = np.concatenate(losses, axis=1) if losses else np.zeros((len(keys), 0))
    finite = np.concatenate(finite, axis=1) if finite else np.zeros((len(keys), 0), bool)
    return state, losses, finite, compile_time, run_time


def fit(engine: Engine, key, x, u, num_steps: int | None = None, *, restarts: int = 1,
        chunk_size: int = 500, progress: bool = True) -> FitResult:
    """Fit a model with an engine; with ``restarts > 1`` keep the best by full-data ELBO.

    Parameters
    ----------
    engine : Engine
    key : PRNG key
    x, u : arrays
    num_steps : int, optional
        Defaults to the engine's configured number of steps.
    restarts : int
        Independent initialisations run together (vectorised); the one with the lowest
        full-data negative ELBO is returned. True latents are never used.

    Returns
    -------
    FitResult

    Examples
    --------
    >>> from ppl_ident.data import simulate_domains
    >>> from ppl_ident.models import build_model
    >>> from ppl_ident.inference import svi_engine
    >>> data, _ = simulate_domains(0, n_latent=2, data_dim=2, n_domains=5, n_per_domain=50)
    >>> spec = build_model("ivae", n_latent=2, data_dim=2, n_domains=5)
    >>> res = fit(svi_engine(spec, batch_size=32), jax.random.PRNGKey(0), data.x, data.u,
    ...           num_steps=20, progress=False)
    >>> res.losses.shape
    (20,)
    """
    num_steps = engine.config.get("num_steps", 1000) if num_steps is None else num_steps
    k_fit, k_eval = jax.random.split(key)
    keys = jax.random.split(k_fit, restarts)
    states, losses, finite, compile_time, run_time = fit_batched(
        engine, keys, x, u, num_steps, chunk_size=chunk_size, progress=progress)
    params = jax.vmap(engine.get_params)(states)
    x, u = jnp.asarray(x), None if u is None else jnp.asarray(u)
    t0 = time.perf_counter()
    final = np.asarray(jax.jit(jax.vmap(engine.evaluate, in_axes=(None, 0, None, None)))(
        k_eval, params, x, u))
    run_time += time.perf_counter() - t0
    final = np.where(np.isfinite(final), final, np.inf)
    best = int(np.argmin(final))
    pick = lambda tree: jax.tree_util.tree_map(lambda a: a[best], tree)  # noqa: E731
    return FitResult(
        params=pick(params), state=pick(states), losses=losses[best],
        num_skipped=int((~finite[best]).sum()), final_loss=float(final[best]),
        restart_losses=final, selected=best, compile_time=compile_time, run_time=run_time,
    )
