"""The contract every model family fulfils, and the bound-model record they all return.

A *model family* is a kind of data and the models that fit it (Dynamax's ``SSM`` in spirit):
i.i.d. observations with a domain or continuous auxiliary variable
(:mod:`ppl_ident.families.iid`), and sequences (:mod:`ppl_ident.families.sequence`). A family
owns its data rank and validation, input preparation, model building, evaluation, the
identifiability checks and the conversion of a fit to ArviZ InferenceData. Everything above
it (:mod:`ppl_ident.workflow`, the checks, the reports, the harness) asks the registry in
:mod:`ppl_ident.families` once and calls these methods; nothing else looks at a model name or
an array's rank. A new family is one subpackage with a :class:`ModelFamily` subclass plus one
line in :data:`ppl_ident.families.FAMILIES`.
"""

from __future__ import annotations

import abc
from typing import Callable, NamedTuple

import equinox as eqx
import numpy as np

from ppl_ident.diagnostics.jacobian import jacobian_regression_route, score_routes
from ppl_ident.diagnostics.mcc import mcc
from ppl_ident.errors import InputError

__all__ = ["DEFAULT_DRAWS", "DEFAULT_OBS", "LATENT_KINDS", "ModelSpec", "ModelFamily",
           "module_params", "select_obs",
           "check_points", "relabel", "regression_jacobian", "REGRESSION_ROWS", "EVAL_ROWS",
           "evaluation_rows"]


class ModelSpec(NamedTuple):
    """A model bound to its networks, with its guide and a JSON-able description.

    Attributes
    ----------
    name : str
    model, guide : callables ``(x=None, u=None, *, subsample_size=None)``
    init_params : callable ``key -> dict``
        Fresh network parameters for a restart (NumPyro ``param`` site name -> pytree);
        pure, so it can be ``vmap``-ed over keys.
    config : dict
        Everything :func:`ppl_ident.families.build_model` needs to rebuild the same spec
        (saved in run directories).
    objective : ``(model, guide)`` or None
        A cheaper pair with the same ELBO as ``(model, guide)`` for the same parameters, which
        the engines train and evaluate on (None: the pair itself). The exact flow models use
        it to run their flow once per step: the model computes ``z = h(x)`` and observes it,
        with an empty guide, where ``(model, guide)`` run ``h`` in both.
    batch_plate : str
        The plate the engines minibatch (its elements are independent given the parameters):
        ``"obs"`` for i.i.d. rows, ``"sequence"`` for whole sequences.
    weight_plates : tuple of str
        Plates inside ``batch_plate`` whose elements are *not* independent (a sequence's
        ``"time"``): an importance-weighted bound folds them, so that it takes one weight per
        element of ``batch_plate`` (:func:`ppl_ident.inference.engines.fold_plate`).
    modules : dict or None
        The Equinox networks the model and guide are bound to, by name (``"decoder"``,
        ``"encoder"``, ``"flow"``, ``"prior_net"``, ``"transition"``): the templates whose
        fitted arrays are ``params[f"{name}$params"]``
        (:func:`ppl_ident.families.predict.fitted_module` combines the two).
    n_latent : int or None
        Latents per observation (per time step of a sequence).
    data_dim : int or None
        Observed columns ``d`` of ``x``.
    guide_name : str
        The guide's name in :data:`ppl_ident.families.guides.GUIDES` (the engines look up its
        family: which ELBOs it takes, whether it runs on all data at once).
    latents : str
        What the model's latent ``z`` is, one of :data:`LATENT_KINDS`: ``"posterior"`` (the
        guide's posterior over the model's own latent site ``z``), ``"point"`` (``z = h(x)``,
        a point estimate: no posterior, no interval, no importance proposal) or
        ``"transformed"`` (the guide's posterior over another latent site, ``w``, of which
        ``z = h(w)``).

    The fields after ``modules`` are what the code outside the families asks of a model;
    ``config`` is only read back by the family that wrote it.
    """

    name: str
    model: Callable
    guide: Callable
    init_params: Callable
    config: dict
    objective: tuple | None = None
    batch_plate: str = "obs"
    weight_plates: tuple = ()
    modules: dict | None = None
    n_latent: int | None = None
    data_dim: int | None = None
    guide_name: str = "encoder"
    latents: str = "posterior"


#: What :attr:`ModelSpec.latents` may say about a model's latent ``z``.
LATENT_KINDS = {
    "posterior": "the guide's posterior over the model's latent site z",
    "point": "z = h(x), a point estimate of an exact-likelihood flow",
    "transformed": "the guide's posterior over the latent site w, of which z = h(w) (the "
                   "noisy flow's noise-free observation)",
}


def module_params(module):
    """The trainable arrays of an Equinox module (the pytree NumPyro's ``eqx_module`` keeps)."""
    return eqx.filter(module, eqx.is_inexact_array)


def check_points(n_total: int, n_points: int, seed: int) -> np.ndarray:
    """Sorted row indices of ``min(n_points, n_total)`` rows drawn without replacement (the
    evaluation points of the identifiability checks)."""
    if int(n_points) != n_points or n_points < 1:
        raise InputError(f"n_points must be a positive integer, got {n_points!r}.")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_total, size=min(int(n_points), n_total), replace=False))


#: Rows (at most) whose ``(z, z_hat)`` pairs the regression route fits its local planes on.
REGRESSION_ROWS = 20_000


def regression_jacobian(z_true, learned, idx, seed: int, *, n_hat: int, what: str = "rows"):
    """The Jacobian check from the true latents alone (a file with ``z`` but not the
    simulator's mixing), shared by the families: local linear fits of the learned latents on
    the true ones (:func:`ppl_ident.diagnostics.jacobian.jacobian_regression_route`) at the
    evaluation points ``idx``, scored like the exact routes.

    ``z_true`` is ``(N, n)`` over all rows (time steps flattened for sequences); ``learned``
    maps an index array ``pool`` to the learned latents ``(len(pool), n_hat)`` of those rows
    (the encoder means). The neighbour pool is ``idx`` plus a seeded subset of the other rows,
    :data:`REGRESSION_ROWS` in all.
    """
    n = z_true.shape[1]
    if n != n_hat:
        return {"applicable": False,
                "reason": f"the model has {n_hat} latents but the truth {n}; the Jacobian scores "
                          f"need a square learned-to-true map (fit with --latent-dim {n})."}
    rest = np.setdiff1d(np.arange(len(z_true)), idx)
    rng = np.random.default_rng(seed + 1)
    pool = np.concatenate([idx, rng.choice(rest, size=min(len(rest), REGRESSION_ROWS - len(idx)),
                                           replace=False)]) if len(rest) else idx
    z_hat = np.asarray(learned(pool), np.float64)
    if not np.all(np.isfinite(z_hat)):
        return {"applicable": False, "reason": "the encoder means are not finite"}
    # only the pool's rows of z are read (z may be memory-mapped): no full float64 copy
    z_pool = np.asarray(z_true[pool], np.float64)
    jac = jacobian_regression_route(z_pool, z_hat, np.arange(len(idx)))
    out = score_routes({"regression": jac}, z_pool[:len(idx)].std(0), z_hat[:len(idx)].std(0))
    out["reason"] = (f"the data file holds z but not the simulator's mixing: d z_hat / d z "
                     f"estimated by local linear fits on the nearest of {len(pool)} {what} in z "
                     "(an estimate; the exact routes need the mixing)")
    return out


#: What a run's ``posterior.nc`` keeps by default, for every family: guide draws of ``z`` per
#: observation, and observations (a seeded random subset; i.i.d. rows; a sequence family
#: keeps whole sequences and reads this as a number of rows, see its ``inference_data``)
DEFAULT_DRAWS = 100
DEFAULT_OBS = 300

#: Rows (at most) on which a fit's metrics are computed (MCC, R^2, the seed agreement, the
#: alignment stored in ``posterior.nc``): every row of smaller data, else a seeded random
#: subset, so evaluation costs the same at 10^5 or 10^7 rows. The standard error of a
#: correlation near 0.9 on 65,536 rows is about 0.001. Every row's latents come from
#: ``encode`` (chunked).
EVAL_ROWS = 65_536


def evaluation_rows(n_total: int, max_rows: int = EVAL_ROWS, seed: int = 0) -> np.ndarray:
    """Sorted row indices: all ``n_total`` rows when at most ``max_rows``, else a seeded random
    subset of ``max_rows`` (drawn without looking at the data)."""
    if n_total <= max_rows:
        return np.arange(n_total)
    return check_points(n_total, max(1, int(max_rows)), seed)


def select_obs(num_total: int, max_obs: int, seed: int = 0) -> np.ndarray:
    """A sorted random subset of ``min(max_obs, num_total)`` row indices (all rows if fewer)."""
    if max_obs >= num_total:
        return np.arange(num_total)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(num_total, size=max_obs, replace=False))


def relabel(u, labels=None):
    """Re-index integer labels (any shape) to ``0..U-1``.

    Returns ``(u_model, labels)``. With ``labels`` given (a fitted model's), labels not seen in
    training raise :class:`InputError`.
    """
    u = np.asarray(u)
    flat = u.ravel()
    if labels is None:
        labels = np.unique(flat)
    idx = np.clip(np.searchsorted(labels, flat), 0, len(labels) - 1)
    unseen = labels[idx] != flat
    if np.any(unseen):
        raise InputError(
            f"Domain label(s) {sorted(set(flat[unseen].tolist()))[:5]} were not seen when "
            f"fitting (known labels: {labels.tolist()[:10]}"
            f"{'...' if len(labels) > 10 else ''}); the learned prior has no parameters for "
            "them. Refit including those domains."
        )
    return idx.astype(np.int32).reshape(u.shape), labels


class ModelFamily(abc.ABC):
    """One family of models and the data they take.

    Class attributes
    ----------------
    name : str
        The registry key (``"iid"``, ``"sequence"``).
    models : tuple of str
        The models of this family (keys of :data:`ppl_ident.families.MODELS`).
    guides : tuple of str
        The guides :func:`ppl_ident.workflow.fit_model` fits with.
    data_rank : int
        ``x.ndim`` of the family's data.
    data_shape : str
        The shape of ``x`` in words, for messages (``"(N, d)"``).
    obs_dims : tuple of str
        The ArviZ dims of one observation's ``z`` before ``latent``.
    label : str
        The family in words (``"i.i.d."``, ``"sequence"``).
    rank_hint : str
        How to make data of this family's shape (for a refusal of other data).
    report_sections : tuple of str
        The sections of a run's report, in page order (keys of
        :data:`ppl_ident.reporting.report.SECTIONS`): the reporting layer builds each
        section it names and shows those that have content.
    titles : dict
        Model name -> the model in words, for legends (``"iVAE"``).
    generators : tuple of str
        The simulators whose settings a comparison grid's ``[data]`` may give
        (``generator = NAME``; the ``ppl-ident simulate --generator`` names), for
        :meth:`data_axes`, :meth:`simulate_setting` and :meth:`setting_label`.
    compare_guides : tuple of str
        The guides a comparison cell may fit with: :attr:`guides` plus those only the harness
        runs (default: :attr:`guides`).
    row_latents : bool
        Whether the latents of different observations are independent given the fitted
        parameters (i.i.d. rows): a sampler can then run per observation (the harness's
        ``nuts`` cells) and importance weights are per observation (PSIS k-hat, held-out
        likelihood). Sequences' latents depend on each other along time.
    """

    name: str
    models: tuple
    guides: tuple
    data_rank: int
    data_shape: str
    obs_dims: tuple
    label: str = ""
    rank_hint: str = ""
    #: whether :mod:`ppl_ident.evidence` can test this family's fits against refits with
    #: ``u`` permuted across rows (it reads :meth:`learned_prior_at`)
    permutation_null: bool = False
    report_sections: tuple = ("summary", "loss", "agreement", "jacobian", "variability")
    titles: dict = {}
    generators: tuple = ()
    row_latents: bool = False

    @property
    def compare_guides(self) -> tuple:
        return self.guides

    def prior_depends_on_u(self, spec) -> bool:
        """Whether the model's prior changes with ``u`` (False: nothing makes its latents
        identifiable, e.g. the VAE's isotropic prior)."""
        return True

    def learned_prior_at(self, spec, params, u):
        """``(loc, sd)``, ``(N, n)`` each, of the fitted prior ``p(z | u)`` at model inputs
        ``u`` (for the permuted-label test); families with ``permutation_null`` implement it."""
        raise NotImplementedError(f"the {self.label} family has no learned prior table")

    def prior_points(self, spec, u_model, max_points: int):
        """The model inputs (at most ``max_points``) at which the permuted-label test compares
        learned priors, from the fitted rows' inputs ``u_model``; families with
        ``permutation_null`` implement it."""
        raise NotImplementedError(f"the {self.label} family has no permuted-label test")

    def learned_prior_table(self, spec, params) -> dict | None:
        """The fitted prior per domain, ``{"loc": (U, n), "sd": (U, n)}`` (the report's
        learned-prior section), or None for a model without one (default)."""
        return None

    def latent_activity(self, fitted, dataset, *, seed: int = 0) -> dict:
        """Which latents of a fit have collapsed, without ground truth
        (:func:`ppl_ident.diagnostics.latent_activity` as a dict with ``applicable``);
        default: not applicable."""
        return {"applicable": False,
                "reason": f"not implemented for {self.label} models"}

    # -- data ------------------------------------------------------------------------------
    def n_obs(self, dataset) -> int:
        """Observations in ``dataset`` (time steps for sequences): the ELBO's per-obs unit."""
        return int(np.prod(np.shape(dataset.x)[:-1]))

    @abc.abstractmethod
    def prepare_inputs(self, u, model: str, labels=None):
        """``(u_model, labels)``: ``u`` as the model takes it, and the original labels."""

    @abc.abstractmethod
    def check_settings(self, dataset, settings):
        """Family-specific refusals and warnings for a fit of ``dataset``; returns the
        settings the fit runs with (e.g. the batch size in the family's units)."""

    # -- models ----------------------------------------------------------------------------
    @abc.abstractmethod
    def build(self, name: str, key, **config) -> ModelSpec:
        """Build model ``name`` of this family (see :func:`ppl_ident.families.build_model`)."""

    @abc.abstractmethod
    def spec_config(self, settings, dataset, u, labels) -> dict:
        """The :meth:`build` keywords of a fit with ``settings`` on ``dataset``."""

    @abc.abstractmethod
    def templates(self, config: dict):
        """Tiny ``(x, u)`` arrays of the shapes a model with ``config`` takes (for
        ``jax.eval_shape`` when a run is loaded)."""

    def auto_flow(self, n: int, d: int, settings) -> bool:
        """Whether a fit that leaves ``flow`` unset uses the exact-likelihood flow for ``n``
        latents of ``d``-dimensional data (default: no)."""
        return False

    def engine_batch(self, settings, dataset) -> int:
        """The minibatch size the engine draws, in elements of the model's batch plate."""
        return int(settings.batch_size)

    def fit_metrics(self, settings, dataset) -> dict:
        """Family-specific entries of a fit's ``metrics.json`` (beside the ELBO and timings)."""
        return {}

    def complete_format_1(self, settings: dict, config: dict) -> dict:
        """The recorded ``settings`` of a format-1 run directory (written before
        ``config.json`` recorded every setting), completed with the values its fit had for
        this family's settings added since; ``config`` is the run's recorded model
        configuration. Default: unchanged."""
        return settings

    # -- results ---------------------------------------------------------------------------
    @abc.abstractmethod
    def evaluate(self, fitted, dataset, truth=None) -> dict:
        """Metrics of a fit: MCC and friends when ``dataset.z`` is known (evaluation only)."""

    def score_latents(self, z_true, z_hat, method: str = "pearson"):
        """MCC (:class:`~ppl_ident.diagnostics.mcc.MCCResult`) of learned latents ``z_hat``
        against true ones, over every observation as :meth:`evaluate` scores them (arrays of
        the data's leading shape plus ``latent``)."""
        return mcc(z_true, z_hat, method)

    # -- comparison grids (ppl_ident.harness) ----------------------------------------------
    def data_axes(self, generator: str) -> dict:
        """The settings a grid's ``[data]`` may give for ``generator`` (one of
        :attr:`generators`), with their defaults; ``latent_dim`` and ``data_dim`` (None: the
        latent dimension) are among them."""
        raise NotImplementedError(f"the {self.label} family simulates no grid data")

    def check_setting(self, setting: dict, model: str) -> None:
        """Refuse, naming the fix, a data setting (every key of :meth:`data_axes` given) that
        the simulator or ``model`` cannot take; called when a grid is made."""
        if setting["data_dim"] < setting["latent_dim"]:
            raise InputError(f"data_dim={setting['data_dim']} < latent_dim="
                             f"{setting['latent_dim']}; the mixing must be injective.")

    def setting_label(self, setting: dict) -> str:
        """A short, file-name-safe label of a data setting (a comparison cell's ID starts with
        it)."""
        raise NotImplementedError(f"the {self.label} family simulates no grid data")

    def simulate_setting(self, setting: dict, heldout_fraction: float):
        """``(train, heldout, truth)`` of a data setting: the simulator's data, split into
        the rows a cell fits and held-out rows (None when the family scores none,
        :attr:`row_latents`), and its ground truth."""
        raise NotImplementedError(f"the {self.label} family simulates no grid data")

    def default_model(self, setting: dict) -> str:
        """The model a grid fits on ``setting`` when it names none."""
        return self.models[0]

    def heldout_rows(self, dataset, fraction: float):
        """A boolean mask of the rows of a user's data file that a comparison holds out (a
        fixed seeded choice), or None when the family holds none out; raises InputError for
        data it cannot split."""
        return None

    @abc.abstractmethod
    def check_data(self, dataset, truth, **options) -> dict:
        """The sufficient-variability check of the simulator's true prior."""

    @abc.abstractmethod
    def check_run(self, fitted, dataset, truth=None, **options) -> dict:
        """The identifiability checks of a fitted model (learned prior, Jacobian)."""

    @abc.abstractmethod
    def inference_data(self, fitted, dataset, *, num_draws: int, max_obs: int, seed: int,
                       truth=None, obs_idx=None, alignment=None, sampler=None,
                       **sampler_options):
        """The posterior over ``z`` as an ArviZ InferenceData whose ``z`` has the dims
        ``("chain", "draw", *obs_dims, "latent")`` (``posterior.nc``).

        Parameters
        ----------
        fitted, dataset
            A fit of this family and its data.
        num_draws, max_obs, seed : int
            Draws per observation, and at most ``max_obs`` observations kept (a seeded
            subset).
        truth : optional
            The simulator's ground truth (the family says what it adds); False: no aligned
            latents even when ``dataset.z`` is known.
        obs_idx : int array, optional
            Keep these entries of the first of ``obs_dims`` instead (the report's fresh draws
            for the observations of ``posterior.nc``).
        alignment : Alignment, optional
            Reuse this map of the learned latents onto the true ones (families that store
            aligned latents).
        sampler : callable, optional
            A latent sampler other than the guide (one of
            :data:`ppl_ident.inference.latents.LATENT_SAMPLERS`, e.g. NUTS) with its
            ``sampler_options``; a family whose latents only its guide draws refuses it with
            :class:`InputError`.
        """
