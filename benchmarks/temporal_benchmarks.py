"""The published temporal benchmarks' settings (issue 16): MCC, regime accuracy, fit time and
the sufficient-variability verdict on the true and the learned transition.

Data are made the way TDRL, LEAP and NCTRL make theirs: n = d = 8 latents, lag 2, 20,000
sequences of 6 steps (LEAP's generators draw ``lags = 2`` initial steps and then ``length = 4``
transition steps, so every sequence has 4 steps scored by the transition), post-nonlinear
transitions ``z_t = leaky_relu(f(z_past) + noise, 0.2)``
(:mod:`ppl_ident.data.sequences`, ``transition="post_nonlinear"``). ``--style published`` (the
default) draws the rest as the published generators do (independent standard-normal first
steps, ``f = sum_l tanh(z_{t-l} W_l)``, noise scale 0.1, a two-layer orthogonal leaky-ReLU
mixing); ``--style package`` uses the package's harder defaults (windows of a stationary chain,
a three-layer mixing of condition number up to 25, noise scales in [0.1, 1], shifted
locations). Settings:

* ``stationary``: one transition law (``--domains 1``); the ``stationary`` model.
* ``domains``: 5 observed domains, each with its own transition *function*
  (``domain_transitions``); ``tivae`` and the ``stationary`` control.
* ``noise``: 5 observed domains whose noise *distribution* changes (Gaussian, Laplace,
  logistic); ``tivae`` and the ``stationary`` control.
* ``regimes3``, ``regimes5``: K = 3 / 5 hidden regimes, each its own transition; ``regime``.

Every fit is :func:`ppl_ident.workflow.fit_model` with its defaults apart from ``lag`` and
``n_regimes`` (the default fit: for d == n the exact flow with the spline transition and the
conditional initial steps); ``--transitions additive flow`` sets the transition prior
explicitly, ``--variational`` fits the variational model (``flow=False``), and ``--steps``
the steps. Prints one JSON line per (setting, model, transition) and metric::

    python benchmarks/temporal_benchmarks.py                     # 3 seeds, the default fit
    python benchmarks/temporal_benchmarks.py --style package     # the package's harder data
    python benchmarks/temporal_benchmarks.py --seeds 1 --steps 2000 --settings regimes3
    python benchmarks/temporal_benchmarks.py --sequences 5000     # smaller data
    python benchmarks/temporal_benchmarks.py --length 4           # 2 transition steps only
    python benchmarks/temporal_benchmarks.py --set depth=1 learning_rate=0.01  # any setting
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import _common

SETTINGS = {
    "stationary": ("dynamics", dict(n_domains=1), ["stationary"]),
    "domains": ("dynamics", dict(n_domains=5, domain_transitions=True),
                ["tivae", "stationary"]),
    "noise": ("dynamics", dict(n_domains=5, noise="changing"), ["tivae", "stationary"]),
    "regimes3": ("regimes", dict(n_regimes=3), ["regime"]),
    "regimes5": ("regimes", dict(n_regimes=5), ["regime"]),
}


def _verdict(report: dict) -> dict:
    v = report["variability"]
    sv = v.get("sufficient_variability", v)
    past = report.get("past_only") or {}
    return {"passed": bool(v.get("passed")), "rank": sv.get("rank"),
            "required": sv.get("required"),
            "past_only_rank": past.get("rank") if past else None}


def oracle_regime_accuracy(data, truth) -> float:
    """Regime accuracy of the Viterbi path under the *true* latents and transitions: the
    ceiling any fitted model can reach on these sequences (the first ``L`` steps of each
    sequence carry no transition evidence, only the chain's)."""
    import jax
    import jax.numpy as jnp

    from ppl_ident.diagnostics.sequences import match_regimes
    from ppl_ident.families.sequence.model import lagged
    from ppl_ident.ops.hmm import hmm_viterbi

    z = jnp.asarray(data.z)
    L, K = truth.lag, truth.trans_matrix.shape[0]
    past = lagged(z, L)
    ll = jnp.stack([truth.log_transition(z, past, k) for k in range(K)], -1)
    ll = ll.at[:, :L].set(0.0)  # the initial steps: no transition term
    path = jax.vmap(lambda l: hmm_viterbi(jnp.log(jnp.asarray(truth.init_probs)),
                                          jnp.log(jnp.asarray(truth.trans_matrix)), l)[0])(ll)
    return float(match_regimes(truth.regimes, np.asarray(path)).accuracy)


def run(settings, seeds, steps, transitions, n_sequences, length, check_learned=True,
        only_models=None, style="published", variational=False, initial=None, overrides=None):
    from ppl_ident.data.sequences import simulate_sequences
    from ppl_ident.workflow import check_data, check_run, fit_model

    rows = []
    for name in settings:
        generator, extra, models = SETTINGS[name]
        sim = dict(n_latent=8, data_dim=8, lag=2, n_sequences=n_sequences, length=length,
                   transition="post_nonlinear", style=style, **extra)
        for seed in range(seeds):
            data, truth = simulate_sequences(generator, seed, **sim)
            true_check = _verdict(check_data(data, truth))
            oracle = oracle_regime_accuracy(data, truth) if generator == "regimes" else None
            for model in models:
                if only_models and model not in only_models:
                    continue
                for tr in transitions:
                    kw = dict(model=model, lag=2, seed=seed)
                    if tr != "default":
                        kw["transition"] = tr
                    if variational:
                        kw["flow"] = False
                    if initial:
                        kw["initial"] = initial
                    if model == "regime":
                        kw["n_regimes"] = extra["n_regimes"]
                    if steps:
                        kw["steps"] = steps
                    kw.update(overrides or {})
                    t0 = time.perf_counter()
                    fitted = fit_model(data, truth=truth, **kw)
                    wall = time.perf_counter() - t0
                    m = fitted.metrics
                    learned = None
                    if check_learned:
                        try:
                            learned = _verdict(check_run(fitted, data, truth))
                        except Exception as err:  # a check failure must not lose the fit
                            learned = {"error": repr(err)[:200]}
                    rec = dict(benchmark=f"temporal_benchmarks/{style}/{name}/{model}/{tr}"
                                         + ("/variational" if variational else "")
                                         + (f"/initial_{initial}" if initial else "")
                                         + "".join(f"/{k}={v}" for k, v in
                                                   (overrides or {}).items()),
                               seed=seed, mcc=m["mcc"],
                               regime_accuracy=m.get("regime_accuracy"),
                               oracle_regime_accuracy=oracle,
                               fit_wall_time_s=wall, compile_time_s=m.get("compile_time_s"),
                               run_time_s=m.get("run_time_s"), steps=len(fitted.losses),
                               true_transition_check=true_check,
                               learned_transition_check=learned,
                               settings=dict(generator=generator, **sim, model=model,
                                             transition_prior=fitted.spec.config["transition"],
                                             flow=fitted.spec.config["flow"],
                                             initial=fitted.spec.config.get("initial"),
                                             steps=steps or "default",
                                             **(overrides or {})))
                    print(f"# {name} seed {seed} {model}/{tr}: MCC {m['mcc']:.3f}"
                          + (f", regime acc {m['regime_accuracy']:.3f}"
                             if m.get("regime_accuracy") is not None else "")
                          + f", {wall:.0f}s; true check {true_check}, learned {learned}",
                          file=sys.stderr, flush=True)
                    rows.append(rec)
    return rows


def summarise(rows):
    """Median over seeds of each (setting, model, transition)."""
    out = []
    for bench in dict.fromkeys(r["benchmark"] for r in rows):
        rs = [r for r in rows if r["benchmark"] == bench]
        base = dict(benchmark=bench, seeds=len(rs), settings=rs[0]["settings"],
                    true_transition_check=rs[0]["true_transition_check"])
        out.append({**base, "metric": "median_mcc",
                    "value": float(np.median([r["mcc"] for r in rs])), "unit": "MCC",
                    "per_seed": [r["mcc"] for r in rs],
                    "learned_transition_check": [r["learned_transition_check"] for r in rs]})
        if rs[0]["regime_accuracy"] is not None:
            out.append({**base, "metric": "median_regime_accuracy",
                        "value": float(np.median([r["regime_accuracy"] for r in rs])),
                        "unit": "fraction", "per_seed": [r["regime_accuracy"] for r in rs],
                        "oracle_per_seed": [r["oracle_regime_accuracy"] for r in rs]})
        out.append({**base, "metric": "median_fit_wall_time",
                    "value": float(np.median([r["fit_wall_time_s"] for r in rs])), "unit": "s",
                    "per_seed": [r["fit_wall_time_s"] for r in rs],
                    "compile_s": [r["compile_time_s"] for r in rs],
                    "run_s": [r["run_time_s"] for r in rs]})
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=None, help="default: the fit's own default")
    p.add_argument("--transitions", nargs="+", choices=["default", "additive", "flow"],
                   default=["default"], help="transition priors to fit (default: the fit's own)")
    p.add_argument("--style", choices=["published", "package"], default="published",
                   help="the data's style (see the module docstring)")
    p.add_argument("--initial", choices=["gaussian", "conditional"], default=None,
                   help="the first steps' density (default: the fit's own)")
    p.add_argument("--variational", action="store_true",
                   help="fit the variational model (flow=False) instead of the default")
    p.add_argument("--sequences", type=int, default=20_000)
    p.add_argument("--length", type=int, default=6,
                   help="steps per sequence, the lag's 2 initial steps included")
    p.add_argument("--models", nargs="+", default=None,
                   help="only these models (default: every model of each setting)")
    p.add_argument("--no-learned-check", action="store_true",
                   help="skip `check` on the learned transition")
    p.add_argument("--set", nargs="*", help="other FitSettings of every fit, KEY=VALUE "
                   "(e.g. depth=1 learning_rate=0.01)")
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")
    args = p.parse_args(argv)
    rows = run(args.settings, args.seeds, args.steps, args.transitions, args.sequences,
               args.length, not args.no_learned_check, args.models, args.style,
               args.variational, args.initial, _common.pairs(args.set))
    _common.write_rows(summarise(rows), args.out)


if __name__ == "__main__":
    main()
