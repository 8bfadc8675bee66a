"""The fit loop: jit-compiled chunks of ``lax.scan`` steps, restarts vectorised with ``vmap``.

Restarts (or seeds) of one engine run as a single vectorised program: on a CPU the small
matrix products of one fit leave most of the machine idle, so ``R`` restarts cost far less
than ``R`` fits. The restart with the best ELBO is selected; true latents are never looked at.

The selecting ELBO runs in chunks of :data:`SELECTION_CHUNK` rows, on every row when there are
at most :data:`SELECTION_ROWS` and otherwise on a seeded random subset of that many rows (an
unbiased estimate of the full-data ELBO, scaled to ``N``), so its memory and time do not grow
with the data; it is timed apart from the steps (``FitResult.selection_time``).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ppl_ident.inference.engines import Engine
from ppl_ident.inference.hostdata import host_rows
from ppl_ident.inference.sharding import batch_mesh, replicate

__all__ = ["DivergencePolicy", "FitResult", "chunk_schedule", "divergence_reason", "fit",
           "fit_batched", "fit_keys", "seed_list", "selection_rows", "selection_loss",
           "SELECTION_ROWS",
           "SELECTION_CHUNK"]

#: Rows (at most) on which the restart-selecting ELBO is estimated: a seeded random subset
#: when the data have more (the ELBO is a sum over rows, so the subset's sum scaled by
#: ``N / rows`` estimates it without bias; its relative standard error at 65,536 rows is
#: small beside the gaps between restarts that matter).
SELECTION_ROWS = 65_536
#: Rows per compiled chunk of the selecting ELBO (bounds the activations' memory).
SELECTION_CHUNK = 8_192


class DivergencePolicy(NamedTuple):
    """When persistent non-finite steps stop a fit.

    A step whose loss or gradients are not finite is skipped (the state keeps the last good
    parameters) and counted. One bad minibatch is harmless; a fit whose steps keep failing has
    diverged. A restart counts as diverged when, at the end of a chunk,

    - its last ``max_consecutive`` steps were all skipped, or
    - more than ``max_skip_fraction`` of its last ``window`` steps were skipped;

    the fit stops when every restart has diverged. The decision depends only on the per-step
    history, never on where chunks end, so a resumed fit stops exactly where an uninterrupted
    one would.
    """

    window: int = 100
    max_skip_fraction: float = 0.5
    max_consecutive: int = 25


def divergence_reason(finite, policy: DivergencePolicy | None = DivergencePolicy()):
    """Why a batch of fits counts as diverged, or None.

    Parameters
    ----------
    finite : bool ``(R, steps)``
        Per-step flags of every restart (``StepInfo.finite``).
    policy : DivergencePolicy or None
        None never reports divergence.

    Returns
    -------
    str or None
        A short description of the skip pattern when *every* restart has diverged.

    Examples
    --------
    >>> divergence_reason(np.zeros((1, 30), bool))
    'the last 25 steps of every restart were non-finite'
    """
    finite = np.asarray(finite, bool)
    if policy is None or finite.ndim != 2 or finite.shape[1] == 0:
        return None
    tail = finite[:, -policy.window:]
    skipped = (~tail).sum(axis=1)
    by_fraction = skipped > policy.max_skip_fraction * policy.window
    by_run = finite.shape[1] >= policy.max_consecutive and \
        np.all(~finite[:, -policy.max_consecutive:], axis=1)
    bad = by_fraction | by_run
    if not np.all(bad):
        return None
    if np.all(by_run):
        return f"the last {policy.max_consecutive} steps of every restart were non-finite"
    return (f"more than {policy.max_skip_fraction:.0%} of the last {policy.window} steps of "
            "every restart were non-finite")


def chunk_schedule(start: int, stop: int, chunk_size: int, every: int | None = None):
    """Lengths of the compiled chunks from step ``start`` to ``stop``.

    Chunk boundaries sit at fixed absolute steps: every multiple of ``every`` (the checkpoint
    interval, when given), each ``every``-block split into near-equal chunks of at most
    ``chunk_size``; otherwise every multiple of ``chunk_size``. A fit resumed from any chunk
    end therefore runs exactly the chunks the uninterrupted fit runs, and at most a few chunk
    lengths (one compilation each) occur.

    Examples
    --------
    >>> chunk_schedule(0, 1000, 500, every=300)
    [300, 300, 300, 100]
    >>> chunk_schedule(300, 1000, 500, every=700)
    [50, 350, 300]
    """
    block = every or chunk_size
    pieces = -(-block // chunk_size)
    sub = -(-block // pieces)
    marks = set()
    for b in range((start // block) * block, stop, block):
        marks.update(min(b + i * sub, b + block) for i in range(pieces + 1))
    marks = sorted(m for m in marks | {stop} if start < m <= stop)
    return [m - a for a, m in zip([start] + marks[:-1], marks)]


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
    stop_reason : str
        ``"completed"``; ``"diverged: ..."`` (see :class:`DivergencePolicy`); or ``"stopped"``
        when a hook asked to stop (an interrupt).
    states : pytree
        The batched state of all restarts (leading axis ``R``), for checkpoints.
    all_losses, all_finite : ``(R, steps)``
        Per-step loss and finite flags of every restart.
    selection_time : float
        Seconds spent computing the restart-selecting ELBO (not in ``run_time``).
    seed_selected : int array ``(K,)``
        With ``K`` seeds: the batch index of each seed's best restart (the restarts of the
        ``k``-th seed given are ``k * R_s .. (k + 1) * R_s - 1``); ``selected`` is the best of
        these.
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
    stop_reason: str = "completed"
    states: object = None
    all_losses: np.ndarray | None = None
    all_finite: np.ndarray | None = None
    seed_selected: np.ndarray | None = None
    selection_time: float = 0.0


def selection_rows(n_obs: int, max_rows: int = SELECTION_ROWS, seed: int = 0):
    """The rows that score restarts: None (all of them) when ``n_obs <= max_rows``, else a
    sorted, seeded random subset of ``max_rows`` rows (never chosen by the data's values)."""
    if n_obs <= max_rows:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_obs, size=max_rows, replace=False))


def _rows(x, rows):
    """``x[rows]`` as an array (all of ``x`` for None); reads only those rows of a memory map
    or of :class:`~ppl_ident.inference.hostdata.HostRows`."""
    x = getattr(x, "array", x)
    if rows is None:
        return x if isinstance(x, jax.Array) else np.asarray(x)
    return np.asarray(x[rows])


def selection_loss(engine: Engine, n_rows: int, chunk: int = SELECTION_CHUNK):
    """A jitted ``(key, params, x, u) -> (R,)``: the negative ELBO of ``R`` restarts'
    parameters (leading axis) summed over the ``n_rows`` rows of ``x``, computed in chunks of
    ``chunk`` rows (``lax.map``; the remainder as one more piece of the same program), so the
    activations' memory is that of one chunk. Needs an engine whose ``evaluate`` sums
    independent per-row terms (``engine.rows_additive``); with several chunks each
    gets its own key (the same estimator as ``evaluate`` on all rows; equal to it for a
    deterministic objective such as the exact flow's)."""
    chunk = int(max(1, min(chunk, n_rows)))
    full, rem = divmod(int(n_rows), chunk)
    ev = jax.vmap(engine.evaluate, in_axes=(None, 0, None, None))

    def loss(key, params, x, u):
        keys = jax.random.split(key, full + 1)
        total = 0.0
        if full:
            lead = (full, chunk)
            xs = x[:full * chunk].reshape(lead + x.shape[1:])
            us = None if u is None else u[:full * chunk].reshape(lead + u.shape[1:])
            per = jax.lax.map(lambda a: ev(a[0], params, a[1], a[2]), (keys[:full], xs, us))
            total = per.sum(0)
        if rem:
            k = key if not full else keys[full]
            total = total + ev(k, params, x[full * chunk:],
                               None if u is None else u[full * chunk:])
        return total

    return jax.jit(loss)


def fit_keys(key, restarts: int = 1, seeds=1):
    """The ``(len(seeds) * restarts, 2)`` initialisation keys of :func:`fit` from its ``key``.

    ``seeds`` is a number ``K`` (the seeds ``0..K-1``) or the seeds themselves (distinct
    integers >= 0). Seed ``k > 0`` folds ``k`` into the key and seed 0 uses it as it is, so a
    seed's restarts never depend on the other seeds: seed 0's are those of a fit with
    ``seeds=1``, and seed ``k`` of ``seeds=(0, k)`` is seed ``k`` of ``seeds=k + 1``.
    """
    k_fit = jax.random.split(key)[0]
    return jnp.concatenate([jax.random.split(k_fit if k == 0 else jax.random.fold_in(k_fit, k),
                                             restarts) for k in seed_list(seeds)])


def seed_list(seeds) -> tuple:
    """The seeds of :func:`fit`'s ``seeds`` argument: ``0..K-1`` for a number ``K``, else the
    given integers."""
    if isinstance(seeds, (int, np.integer)):
        return tuple(range(int(seeds)))
    return tuple(int(k) for k in seeds)


def _vmapped_step(engine: Engine, restarts: int):
    """``engine.step`` over a leading restart axis. One restart runs unbatched (the axis
    squeezed out and put back): ``vmap`` over a length-1 axis turns every matrix product into
    a batched one, which XLA's CPU backend runs markedly slower (measured on the i.i.d. flow:
    13.6 against 9.2 ms per step)."""
    if restarts > 1:
        return jax.vmap(engine.step, in_axes=(0, None, None))

    def step(states, x, u):
        state = jax.tree_util.tree_map(lambda a: a[0], states)
        state, info = engine.step(state, x, u)
        return jax.tree_util.tree_map(lambda a: a[None], (state, info))

    return step


def _chunk_fn(engine: Engine, length: int, restarts: int):
    step = _vmapped_step(engine, restarts)

    def run_chunk(states, x, u):
        def body(states, _):
            return step(states, x, u)

        return jax.lax.scan(body, states, None, length=length)

    return jax.jit(run_chunk, donate_argnums=0)


def fit_batched(engine: Engine, keys, x, u, num_steps: int, *, chunk_size: int = 500,
                progress: bool = True, state=None, start_step: int = 0, history=None,
                on_chunk=None, divergence: DivergencePolicy | None = None,
                checkpoint_every: int | None = None):
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
    history : (losses, finite), optional
        ``(R, start_step)`` per-step records of the steps already done (resume); they are
        prepended to the returned records and seen by ``on_chunk`` and ``divergence``.
    on_chunk : callable, optional
        ``on_chunk(step, states, losses, finite)`` after each chunk with the full records so
        far (``(R, step)``); return True to stop early (checkpoints, interrupts, periodic
        evaluations).
    divergence : DivergencePolicy, optional
        Stop when :func:`divergence_reason` reports that every restart diverged.
    checkpoint_every : int, optional
        Align chunk ends with multiples of this many steps (see :func:`chunk_schedule`).

    Returns
    -------
    states, losses ``(R, steps)``, finite ``(R, steps)``, compile_time, run_time
        ``steps`` counts the steps in ``history`` plus those run now.
    """
    mesh = batch_mesh(engine.devices) if engine.devices > 1 else None
    # a memory-mapped x stays on disk: each step reads its minibatch's rows (HostRows); with
    # several devices the data are replicated onto each of them instead
    x = host_rows(x) if mesh is None else jnp.asarray(np.asarray(x, np.float32))
    u = None if u is None else jnp.asarray(u)
    x, u = replicate((x, u), mesh)
    t0 = time.perf_counter()
    if state is None:
        state = jax.jit(jax.vmap(engine.init, in_axes=(0, None, None)))(keys, x, u)
        jax.block_until_ready(state)
    state = replicate(state, mesh)
    restarts = jax.tree_util.tree_leaves(state)[0].shape[0]
    remaining = num_steps - start_step
    sizes = chunk_schedule(start_step, num_steps, chunk_size, checkpoint_every)
    compiled = {}
    for length in set(sizes):
        compiled[length] = _chunk_fn(engine, length, restarts).lower(state, x, u).compile()
    compile_time = time.perf_counter() - t0

    losses, finite = [], []
    if history is not None:
        losses.append(np.asarray(history[0], np.float32).reshape(len(keys), -1))
        finite.append(np.asarray(history[1], bool).reshape(len(keys), -1))
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
            if on_chunk is not None or divergence is not None:
                losses = [np.concatenate(losses, axis=1)]
                finite = [np.concatenate(finite, axis=1)]
                if on_chunk is not None and on_chunk(step, state, losses[0], finite[0]):
                    break
                if divergence_reason(finite[0], divergence) is not None:
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
        seeds=1, chunk_size: int = 500, progress: bool = True, state=None,
        start_step: int = 0,
        history=None, on_chunk=None, divergence: DivergencePolicy | None = DivergencePolicy(),
        checkpoint_every: int | None = None) -> FitResult:
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
        negative ELBO is returned (over all rows, or a subset of :data:`SELECTION_ROWS` rows
        of larger data, in chunks: :func:`selection_loss`). True latents are never used.
    seeds : int or sequence of int
        Independent fits (each with ``restarts`` restarts), all run in the same vectorised
        program and all kept (``FitResult.seed_selected``, in the order given), for the
        agreement between seeds; the returned fit is still the best by full-data ELBO over all
        of them. A number ``K`` means the seeds ``0..K-1``; seed ``k``'s fit is the same in
        every fit that has it (:func:`fit_keys`), so the comparison harness can name its
        seeds.
    state, start_step, history : optional
        Resume from a batched state (``FitResult.states`` or a checkpoint) after
        ``start_step`` steps with their ``(R, start_step)`` records ``(losses, finite)``. The
        RNG key and the optimiser's step count (which drives the learning-rate schedule) live
        in the state, so a resumed fit continues bit-identically.
    on_chunk, checkpoint_every : optional
        See :func:`fit_batched`.
    divergence : DivergencePolicy or None
        Stop early when every restart keeps producing non-finite steps (None: never).

    Returns
    -------
    FitResult

    Examples
    --------
    >>> from ppl_ident.data import simulate_domains
    >>> from ppl_ident.families import build_model
    >>> from ppl_ident.inference import svi_engine
    >>> data, _ = simulate_domains(0, n_latent=2, data_dim=2, n_domains=5, n_per_domain=50)
    >>> spec = build_model("ivae", n_latent=2, data_dim=2, n_domains=5)
    >>> res = fit(svi_engine(spec, batch_size=32), jax.random.PRNGKey(0), data.x, data.u,
    ...           num_steps=20, progress=False)
    >>> res.losses.shape
    (20,)
    """
    if num_steps is None:
        num_steps = engine.num_steps or 1000
    k_eval = jax.random.split(key)[1]
    keys = fit_keys(key, restarts, seeds)
    n_seeds = len(seed_list(seeds))
    states, losses, finite, compile_time, run_time = fit_batched(
        engine, keys, x, u, num_steps, chunk_size=chunk_size, progress=progress, state=state,
        start_step=start_step, history=history, on_chunk=on_chunk, divergence=divergence,
        checkpoint_every=checkpoint_every)
    reason = divergence_reason(finite, divergence)
    if reason is not None:
        stop_reason = f"diverged: {reason}"
    else:
        stop_reason = "completed" if finite.shape[1] >= num_steps else "stopped"
    params = jax.vmap(engine.get_params)(states)
    # the ELBO that selects the restart: compiled and timed apart from the steps
    t0 = time.perf_counter()
    n_obs = x.shape[0]
    if engine.rows_additive:
        rows = selection_rows(n_obs, SELECTION_ROWS)
        x_sel, u_sel = _rows(x, rows), None if u is None else _rows(u, rows)
        n_sel = n_obs if rows is None else len(rows)
        x_sel, u_sel = jnp.asarray(x_sel), None if u_sel is None else jnp.asarray(u_sel)
        evaluate = selection_loss(engine, n_sel).lower(k_eval, params, x_sel, u_sel).compile()
        scale = n_obs / n_sel
    else:  # guides with per-row parameters: the engine's own full-data estimate
        x_sel, u_sel = jnp.asarray(_rows(x, None)), None if u is None else jnp.asarray(u)
        evaluate = jax.jit(jax.vmap(engine.evaluate, in_axes=(None, 0, None, None))).lower(
            k_eval, params, x_sel, u_sel).compile()
        scale = 1.0
    compile_time += time.perf_counter() - t0
    t0 = time.perf_counter()
    final = np.asarray(evaluate(k_eval, params, x_sel, u_sel)) * scale
    selection_time = time.perf_counter() - t0
    final = np.where(np.isfinite(final), final, np.inf)
    best = int(np.argmin(final))
    groups = final.reshape(n_seeds, -1)
    seed_selected = np.argmin(groups, axis=1) + groups.shape[1] * np.arange(n_seeds)
    pick = lambda tree: jax.tree_util.tree_map(lambda a: a[best], tree)  # noqa: E731
    return FitResult(
        params=pick(params), state=pick(states), losses=losses[best],
        num_skipped=int((~finite[best]).sum()), final_loss=float(final[best]),
        restart_losses=final, selected=best, compile_time=compile_time, run_time=run_time,
        stop_reason=stop_reason, states=states, all_losses=losses, all_finite=finite,
        seed_selected=seed_selected, selection_time=selection_time,
    )
