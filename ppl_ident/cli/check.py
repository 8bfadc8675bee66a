"""``ppl-ident check``: identifiability checks of a simulated data file or a fitted run."""

from __future__ import annotations

from ppl_ident.cli._args import add_table_arguments, nonneg_int, positive_int, table_columns

NAME = "check"
HELP = ("Check identifiability: on a simulated .npz, whether the true prior (for sequences: "
        "the transition density, with the past as auxiliary variable) varies enough; on a run "
        "directory, the learned prior or transition and (with ground truth) the Jacobian "
        "structure of the learned-to-true map.")


def add_arguments(p):
    p.add_argument("path", help="simulated data (.npz, or a .npy / zarr directory), or a run "
                                "directory written by fit")
    p.add_argument("--data", default=None,
                   help="data file of a run directory, .npz or a .csv / .parquet table "
                        "(default: the one recorded in its config.json, read with the "
                        "recorded column mapping)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--out", default=None,
                   help="directory for the PNG plots (and check.json); none when omitted. "
                        "For a run, RUN itself or RUN/check writes them into RUN/check, "
                        "replacing an earlier check there without --force, and the report "
                        "shows them")
    p.add_argument("--points", type=positive_int, default=256,
                   help="number of evaluation points drawn from the data")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the choice of points")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out")
    p.add_argument("--null-fits", type=nonneg_int, default=None,
                   help="for a run: refits with u permuted across rows (3 seeds each) that the "
                        "verdict is tested against (default: the test `fit --verdict` stored, "
                        "else 2); 0 skips the test")
    add_table_arguments(p)


def _load_run_inputs(run, data_arg, columns=None):
    from ppl_ident.workflow import load_run, load_run_data

    fitted = load_run(run)
    data, truth, data_path, _ = load_run_data(run, data_arg, columns)
    return fitted, data, truth, data_path


def _variability_lines(v, kind: str = "data") -> list[str]:
    if not v.get("applicable", True):
        return [f"  prior variability: not applicable: {v['reason']}"]
    sv = v["sufficient_variability"]
    whose = "the true prior" if kind == "data" else "the learned prior"
    if v["passed"]:
        claim = (f"{whose} satisfies the condition (so the latents are identifiable in theory"
                 + ("" if kind == "data" else "; whether this fit found them: see 'fit' below")
                 + ")")
    else:
        claim = f"{whose} is not shown to satisfy the condition"
    lines = [f"  condition: {claim} (conditions that hold: {', '.join(v['holds']) or 'none'})",
             f"  seed's condition: rank {sv['rank']} of 2n = {sv['required']} "
             f"({sv['share_passing']:.0%} of {sv['n_points']} points pass, {sv['n_aux']} "
             f"auxiliary values) -> {'PASS' if sv['passed'] else 'FAIL'}"]
    ef = v.get("exponential_family")
    if ef is not None:
        if ef["applicable"]:
            lines.append(f"  exponential-family condition: T(z) = ({', '.join(ef['statistics'])}),"
                         f" rank {ef['rank']} of n k = {ef['required']} -> "
                         f"{'PASS' if ef['passed'] else 'FAIL'}")
        else:
            lines.append("  exponential-family condition: not applicable")
    lines.append(f"  why: {v['reason']}")
    return lines


_AUX_TEXT = {"past": "the past z_{t-1..t-L}", "segment": "the segment label u_t",
             "past+domain": "the past z_{t-1..t-L} and the domain u_t",
             "past+regime": "the past z_{t-1..t-L} and the regime k_t"}


def _sequence_header(result: dict, source: str) -> list[str]:
    aux = _AUX_TEXT.get(result["auxiliary"], result["auxiliary"] or "none")
    if result["kind"] == "data":
        rows = f", {result['n_rows']} {result['row_name']}s" if result["row_name"] else ""
        what = ("per-segment densities p(z_t | u_t)" if result["generator"] == "segments"
                else f"{result['generator']} transition densities (lag {result['lag']})")
        return [f"{source}: true {what}, {result['n_latent']} latents{rows}",
                f"auxiliary variable: {aux} ({result['n_aux']} values, "
                f"{result['n_points']} latent points)"]
    return [f"{source}: fitted {result['model']} (lag {result['lag']}, encoder context "
            f"{result['context']}), {result['n_points']} evaluation points from "
            f"{result['n_sequences']} sequences x {result['length']} steps",
            f"learned transition density, auxiliary variable: {aux} ({result['n_aux']} "
            "values):"]


def _sequence_lines(result: dict) -> list[str]:
    lines = []
    if result.get("sequence_reason"):
        lines.append(f"  theory: {result['sequence_reason']}")
    p = result.get("past_only")
    if p is not None:
        lines.append(f"  past alone ({result['row_name']} {p['row']}): rank {p['rank']} of 2n = "
                     f"{p['required']} (second-derivative block rank {p['rank_second']}) -> "
                     f"{'PASS' if p['passed'] else 'FAIL'}")
    return lines


def _verdict_lines(result: dict) -> list[str]:
    ev = result.get("evidence")
    if ev is None:
        return []
    v = ev["verdict"]
    lines = [f"verdict: {v['word'].upper()}: {v['reason']}"]
    if v.get("next"):
        lines.append(f"  next: {v['next']}")
    null = ev.get("null")
    if null:
        var, agr = ev["variation"], ev["agreement"]
        lines.append(f"  how: {null['permutations']} refits with u permuted across rows, "
                     f"{null['seeds']} seeds each, on {null['rows']} rows; no true latent read")
        lines.append("  prior change across u per latent: "
                     + " ".join(f"{s:.3f}" for s in var["size"])
                     + f" (permuted labels: at most {var['null_max']:.3f}); rank {var['rank']} "
                       f"of n = {var['required']} beyond chance")
        src = " (a refit with 3 seeds: the run has one)" if agr["refitted"] else ""
        lines.append("  seeds' agreement per latent: "
                     + " ".join(f"{a:.3f}" for a in agr["per_latent"])
                     + f" (permuted labels: at most {agr['null_max']:.3f}, median "
                       f"{agr['null_median']:.3f}){src}")
    return lines


def _summary(result: dict, source: str) -> str:
    if result.get("sequence"):
        lines = _sequence_header(result, source)
    elif result["kind"] == "data":
        lines = [f"{source}: true {result['source']} prior, {result['n_latent']} latents, "
                 f"{result['n_domains']} domains"]
    else:
        lines = [f"{source}: fitted {result['model']}, {result['n_points']} evaluation points",
                 "learned prior:"]
    lines += _variability_lines(result["variability"], result["kind"])
    if result.get("sequence"):
        lines += _sequence_lines(result)
    jac = result.get("jacobian")
    if jac is not None:
        lines.append("Jacobian of the learned-to-true map (0 = scaled permutation):")
        if not jac.get("applicable", True):
            lines.append(f"  not applicable: {jac['reason']}")
        elif result.get("sequence") or "regression" in jac:
            lines.append(f"  how: {jac['reason']}")
        for route in ("encoder", "decoder", "regression"):
            r = jac.get(route)
            if r is None:
                continue
            if not r.get("applicable", True):
                lines.append(f"  {route} route: {r['reason']}")
                continue
            rot = r.get("rotation_off_mass")
            mean_off = "" if rot is None else (
                f"mean Jacobian {r['mean_off_mass']:.1%} off the matching (random rotations: "
                f"5 % quantile {rot[0]:.1%}, median {rot[1]:.1%}), ")
            lines.append(f"  {route} route: {r['verdict']}: {mean_off}{r['agreement']:.0%} of "
                         f"points on one permutation, pointwise off-matching mass "
                         f"{r['off_mass']:.1%}, Amari {r['amari']:.3f}")
    elif result["kind"] == "run":
        lines.append("Jacobian: no ground truth in the data file, not computed.")
    agree = result.get("seed_agreement")
    if agree is not None:
        low = "" if agree.get("min") is None else f", least-agreeing pair {agree['min']:.3f}"
        mean = "n/a" if agree["mean"] is None else f"{agree['mean']:.3f}"
        lines.append(f"seed agreement: mean pairwise MCC {mean} over {agree['seeds']} seeds"
                     f"{low}")
    noise = result.get("observation_noise")
    if noise:
        lines.append(f"observation noise: {noise['message']}")
    if result["kind"] == "run":
        lines.append(f"fit: {_recovery_verdict(result)}")
    return "\n".join(_verdict_lines(result) + lines)


def _recovery_verdict(result: dict) -> str:
    """Whether the fit recovered the latents, in plain words, kept apart from the condition on
    the prior: a collapsed latent or an entangled Jacobian says no whatever the prior says."""
    act = result.get("activity") or {}
    if act.get("collapsed"):
        return "did not recover every latent: " + act["message"]
    jac = result.get("jacobian") or {}
    routes = [jac[r] for r in ("encoder", "decoder", "regression")
              if isinstance(jac.get(r), dict) and jac[r].get("applicable", True)]
    if routes:
        verdicts = {r["verdict"] for r in routes}
        if verdicts == {"identified"}:
            return ("recovered the latents: on every route checked the learned-to-true map is "
                    "on average a scaled permutation, closer to one than 95 % of random "
                    "rotations.")
        worst = "entangled" if "entangled" in verdicts else "partial"
        return (f"did not recover the latents cleanly: the learned-to-true map is {worst} "
                "(see the routes above).")
    if (result.get("observation_noise") or {}).get("in_doubt"):
        return ("in doubt: the observation noise the fit learned drowns part of the latents "
                "(see the observation noise line).")
    evidence = result.get("evidence")
    if evidence is not None:
        return (f"no latent has collapsed; without ground truth the verdict is "
                f"'{evidence['verdict']['word']}' (first lines).")
    agree = result.get("seed_agreement")
    if agree is not None:
        from ppl_ident.diagnostics.agreement import agreement_verdict

        return ("no latent has collapsed; without ground truth: "
                + agreement_verdict(agree["mean"], agree["seeds"]))
    return ("no latent has collapsed; without ground truth, whether the fit recovered the "
            "latents is not known from one fit (fit with --seeds 3 to measure the agreement "
            "between seeds).")


def run(args) -> int:
    import json
    from pathlib import Path

    from ppl_ident.workflow import check_data, check_run
    from ppl_ident.data import load_dataset
    from ppl_ident.errors import InputError

    from ppl_ident.data.io import data_dir_format

    path = Path(args.path)
    is_run = path.is_dir() and data_dir_format(path) is None
    if args.out:
        # refuse an unusable --out before the check (and its refits) runs, not after
        from ppl_ident.files import check_output_dir
        from ppl_ident.reporting.plots import check_out_dir

        out_dir, own = check_out_dir(args.out, path if is_run else None)
        check_output_dir(out_dir, force=args.force or own)
    if is_run:
        fitted, data, truth, _ = _load_run_inputs(path, args.data, table_columns(args))
        result = check_run(fitted, data, truth, n_points=args.points, seed=args.seed)
        stored = fitted.metrics.get("evidence")
        if stored is not None and args.null_fits is None:
            result["evidence"] = stored
        elif args.null_fits != 0:
            import sys

            from ppl_ident.evidence import NULL_PERMUTATIONS, identifiability_evidence

            refits = args.null_fits or NULL_PERMUTATIONS
            print(f"testing against {refits} refits with permuted labels ...",
                  file=sys.stderr, flush=True)
            result["evidence"] = identifiability_evidence(fitted, data, permutations=refits,
                                                          seed=args.seed)
    elif path.exists():
        if args.data:
            raise InputError("--data only applies to a run directory; pass the .npz as PATH.")
        data, truth = load_dataset(path, table_columns(args))
        result = check_data(data, truth, n_points=args.points, seed=args.seed)
    else:
        raise InputError(
            f"{path} does not exist; pass a simulated .npz (`ppl-ident simulate`) or a run "
            "directory (`ppl-ident fit --out`)."
        )
    written = []
    if args.out:
        from ppl_ident.reporting.plots import check_out_dir, write_check

        out, own = check_out_dir(args.out, path if result["kind"] == "run" else None)
        written = write_check(result, out, force=args.force or own)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(_summary(result, str(path)))
        if written:
            print(f"wrote {', '.join(str(w) for w in written)}")
    return 0
