"""``ppl-ident simulate``: write a simulated ``.npz`` data file."""

from __future__ import annotations

from ppl_ident.cli._args import nonneg_float, positive_float, positive_int, nonneg_int

NAME = "simulate"
HELP = ("Simulate latents mixed by a random invertible MLP (domains, or sequences: segments, "
        "dynamics, regimes, or the published generators' ports); write a .npz.")
#: The published temporal generators' ports (ppl_ident.data.published.PUBLISHED_GENERATORS,
#: repeated here so that --help does not import JAX; tests/cli checks that they agree).
PUBLISHED = ("tdrl_changing", "tdrl_stationary", "nctrl", "ctrlns")
GENERATORS = ("domains", "segments", "dynamics", "regimes") + PUBLISHED


def add_arguments(p):
    from ppl_ident.data import SOURCES, SimulationConfig
    from ppl_ident.data.mixing import ACTIVATIONS

    d = SimulationConfig()
    p.add_argument("--out", required=True,
                   help="output .npz path, or a directory NAME.npy/ of x.npy, u.npy, z.npy "
                        "(memory-mapped when read: for data larger than memory); never "
                        "overwritten without --force")
    p.add_argument("--generator", choices=GENERATORS, default="domains",
                   help="domains: i.i.d. (N, d) data; segments/dynamics/regimes: sequences "
                        "(B, T, d), see ppl_ident.data.sequences; tdrl_changing, "
                        "tdrl_stationary, nctrl, ctrlns: ports of the published generators "
                        "with their own settings (ppl_ident.data.published; only --seed, "
                        "--sequences, --regimes and --domains apply)")
    p.add_argument("--seed", type=nonneg_int, default=0,
                   help="seed of the latents, the domain parameters and the mixing")
    p.add_argument("--latent-dim", type=positive_int, default=d.n_latent, help="n")
    p.add_argument("--data-dim", type=positive_int, default=d.data_dim, help="d >= n")
    p.add_argument("--domains", type=positive_int, default=None,
                   help=f"number of domains U (identifiability needs >= 2n+1; default "
                        f"{d.n_domains}, dynamics: 5)")
    p.add_argument("--points-per-domain", type=positive_int, default=d.n_per_domain,
                   help="observations drawn in each domain")
    p.add_argument("--mixing-layers", type=positive_int, default=d.n_layers,
                   help="layers of the random invertible MLP mixing z into x")
    p.add_argument("--activation", choices=ACTIVATIONS, default=d.activation,
                   help="invertible non-linearity between the mixing layers")
    p.add_argument("--slope", type=positive_float, default=d.slope,
                   help="negative-side slope of the leaky ReLU (how non-linear the mixing is)")
    p.add_argument("--source", choices=SOURCES, default=d.source,
                   help="distribution of each latent given the domain")
    p.add_argument("--df", type=positive_float, default=d.df, help="student_t degrees of freedom")
    p.add_argument("--scale-min", type=positive_float, default=None,
                   help=f"default {d.scale_range[0]} (sequences: 0.1)")
    p.add_argument("--scale-max", type=positive_float, default=None,
                   help=f"default {d.scale_range[1]} (sequences: 1.0)")
    p.add_argument("--loc-range", type=nonneg_float, default=None,
                   help=f"per-domain locations uniform in [-r, r]; 0 keeps sources centred "
                        f"(default {d.loc_range}, sequences: 1.0)")
    p.add_argument("--noise-std", type=nonneg_float, default=d.noise_std,
                   help="standard deviation of Gaussian noise added to x")
    p.add_argument("--identical-domains", action="store_true",
                   help="give every domain the same distribution (breaks identifiability)")
    p.add_argument("--max-cond", type=positive_float, default=d.max_cond,
                   help="reject mixing layers with a larger condition number (default: the "
                        "lower quartile of random draws, as in the literature)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    g = p.add_argument_group("sequences (--generator segments|dynamics|regimes)")
    g.add_argument("--sequences", type=positive_int, default=None,
                   help="number of sequences B (default 10 for segments, else 200)")
    g.add_argument("--length", type=positive_int, default=50, help="steps T per sequence")
    g.add_argument("--lag", type=positive_int, default=1, help="transition lag L")
    g.add_argument("--segments", type=positive_int, default=10, help="segments per series (>= 2)")
    g.add_argument("--segment-length", type=positive_int, default=50,
                   help="segments: steps per segment")
    g.add_argument("--domain-length", type=positive_int, default=None,
                   help="dynamics: switch domain every this many steps (default: per sequence)")
    g.add_argument("--regimes", type=positive_int, default=None,
                   help="number of hidden regimes K (>= 2; default 3, nctrl and ctrlns: 5)")
    g.add_argument("--stay-prob", type=nonneg_float, default=0.95,
                   help="regimes: probability of staying in a regime (< 1)")
    g.add_argument("--scale-gain", type=nonneg_float, default=0.0,
                   help="dynamics/regimes: the noise scale moves with the past by a factor up "
                        "to exp(+-gain) (heteroscedastic; 0: it changes with u only)")
    g.add_argument("--transition", choices=("additive", "post_nonlinear"), default="additive",
                   help="dynamics/regimes: additive noise around the transition's mean, or "
                        "post_nonlinear: the noisy step goes through a leaky ReLU (the "
                        "published temporal benchmarks' kind)")
    g.add_argument("--pnl-slope", type=positive_float, default=0.2,
                   help="post_nonlinear: negative-side slope of the leaky ReLU (<= 1)")
    g.add_argument("--domain-transitions", action="store_true",
                   help="dynamics: every domain has its own transition function (not only its "
                        "own noise)")
    g.add_argument("--noise", choices=("gaussian", "changing"), default="gaussian",
                   help="dynamics/regimes: changing: the noise distribution changes with the "
                        "domain/regime (Gaussian, Laplace, logistic in turn)")
    g.add_argument("--style", choices=("package", "published"), default="package",
                   help="dynamics/regimes: published draws the rest as the published temporal "
                        "benchmarks' generators do (standard-normal first steps, transition "
                        "sum_l tanh(z_{t-l} W_l), noise scale 0.1, two orthogonal leaky-ReLU "
                        "mixing layers; the mixing, scale and location options are then "
                        "unused); package (default) is harder")


def run(args) -> int:
    from ppl_ident.data import save_dataset, simulate_domains
    from ppl_ident.errors import InputError

    from pathlib import Path

    out = Path(args.out)
    if out.suffix not in (".npz", ".npy"):
        raise InputError(f"--out must end in .npz (a file) or .npy (a directory of .npy "
                         f"files), got {out}; try --out {out.with_suffix('.npz')}.")
    if out.exists() and not args.force:
        raise InputError(f"{out} already exists; choose another --out or pass --force to replace it.")
    if args.scale_gain > 0 and args.generator not in ("dynamics", "regimes"):
        raise InputError(f"--scale-gain makes a transition heteroscedastic; the {args.generator} "
                         "generator has no transition: use --generator dynamics or regimes, or "
                         "drop --scale-gain.")
    _check_counts(args)
    seq_only = [flag for flag, on in (("--transition", args.transition != "additive"),
                                      ("--domain-transitions", args.domain_transitions),
                                      ("--noise", args.noise != "gaussian"),
                                      ("--style", args.style != "package")) if on]
    if args.pnl_slope != 0.2 and args.transition != "post_nonlinear":
        raise InputError("--pnl-slope is the slope of the post-nonlinear transition's leaky "
                         "ReLU: add --transition post_nonlinear, or drop --pnl-slope.")
    if seq_only and args.generator not in ("dynamics", "regimes"):
        raise InputError(f"{', '.join(seq_only)} set(s) the transition of the dynamics and "
                         f"regimes generators; the {args.generator} generator has none: use "
                         "--generator dynamics or regimes, or drop them.")
    if args.generator in PUBLISHED:
        return _run_published(args, out)
    if args.generator != "domains":
        return _run_sequences(args, out)
    from ppl_ident.data import SimulationConfig

    d = SimulationConfig()
    args.domains = d.n_domains if args.domains is None else args.domains
    args.scale_min = d.scale_range[0] if args.scale_min is None else args.scale_min
    args.scale_max = d.scale_range[1] if args.scale_max is None else args.scale_max
    args.loc_range = d.loc_range if args.loc_range is None else args.loc_range
    data, truth = simulate_domains(
        args.seed, n_latent=args.latent_dim, data_dim=args.data_dim, n_domains=args.domains,
        n_per_domain=args.points_per_domain, n_layers=args.mixing_layers,
        activation=args.activation, slope=args.slope, source=args.source, df=args.df,
        scale_range=(args.scale_min, args.scale_max), loc_range=args.loc_range,
        noise_std=args.noise_std, identical_domains=args.identical_domains,
        max_cond=args.max_cond,
    )
    save_dataset(out, data, truth, overwrite=args.force)
    print(f"wrote {out}: x {data.x.shape}, {args.domains} domains, {args.latent_dim} latents")
    return 0


def _check_counts(args) -> None:
    """Refuse counts that leave the auxiliary variable nothing to say: one domain (i.i.d.) or
    one segment; a single regime is refused by the simulator itself."""
    from ppl_ident.errors import InputError

    if args.generator == "domains" and args.domains is not None and args.domains < 2:
        raise InputError(
            "--domains 1 gives every observation the same u, so u says nothing about z and no "
            f"model can identify the latents; choose --domains 2 or more (2n+1 = "
            f"{2 * args.latent_dim + 1} for the sufficient-variability condition), or keep "
            "several domains with --identical-domains for a non-identifiable control.")
    if args.generator == "segments" and args.segments < 2:
        raise InputError(
            "--segments 1 gives every time step the same u, so u says nothing about z; choose "
            f"--segments 2 or more (2n+1 = {2 * args.latent_dim + 1} for the "
            "sufficient-variability condition).")


def _run_sequences(args, out) -> int:
    from ppl_ident.data import save_dataset
    from ppl_ident.data.sequences import SequenceConfig, simulate_sequences

    d = SequenceConfig()
    if args.source != "gaussian":
        from ppl_ident.errors import InputError

        raise InputError("Sequence generators draw Gaussian noise; drop --source.")
    data, truth = simulate_sequences(
        args.generator, args.seed, n_latent=args.latent_dim, data_dim=args.data_dim,
        n_sequences=args.sequences, length=args.length, n_layers=args.mixing_layers,
        activation=args.activation, slope=args.slope, max_cond=args.max_cond,
        noise_std=args.noise_std, n_segments=args.segments, segment_length=args.segment_length,
        loc_range=d.loc_range if args.loc_range is None else args.loc_range, lag=args.lag,
        n_domains=d.n_domains if args.domains is None else args.domains,
        domain_length=args.domain_length,
        scale_range=(d.scale_range[0] if args.scale_min is None else args.scale_min,
                     d.scale_range[1] if args.scale_max is None else args.scale_max),
        n_regimes=d.n_regimes if args.regimes is None else args.regimes,
        stay_prob=args.stay_prob, scale_gain=args.scale_gain,
        transition=args.transition, pnl_slope=args.pnl_slope,
        domain_transitions=args.domain_transitions, noise=args.noise, style=args.style,
    )
    save_dataset(out, data, truth, overwrite=args.force)
    u = "hidden regimes (no u)" if data.u is None else f"u {data.u.shape}"
    print(f"wrote {out}: {args.generator}, x {data.x.shape}, {u}, {args.latent_dim} latents")
    return 0


#: Flags of the package's own generators, by destination: the published ports keep their
#: originals' settings, so one changed from its default is refused rather than ignored.
PACKAGE_ONLY = ("latent_dim", "data_dim", "points_per_domain", "mixing_layers", "activation",
                "slope", "source", "df", "max_cond", "identical_domains", "noise_std",
                "length", "lag", "segments", "segment_length", "stay_prob", "scale_min",
                "scale_max", "loc_range", "domain_length")


def _changed_package_flags(args) -> list[str]:
    """The :data:`PACKAGE_ONLY` flags ``args`` sets to other than their defaults (read from
    the parser :func:`add_arguments` builds, so that they are declared once)."""
    import argparse

    p = argparse.ArgumentParser()
    add_arguments(p)
    return ["--" + dest.replace("_", "-") for dest in PACKAGE_ONLY
            if getattr(args, dest) != p.get_default(dest)]


def _run_published(args, out) -> int:
    from ppl_ident.data import save_dataset
    from ppl_ident.data.published import simulate_published
    from ppl_ident.errors import InputError

    changed = _changed_package_flags(args)
    if changed:
        raise InputError(f"{', '.join(changed)} set(s) the package's own generators; the "
                         f"{args.generator} port keeps the original's settings (8 latents, "
                         "its lag, length and mixing): drop them, or choose --generator "
                         "dynamics or regimes.")
    g, opts = args.generator, {}
    if args.regimes is not None:
        if g not in ("nctrl", "ctrlns"):
            raise InputError(f"--regimes counts hidden regimes; {g} has none: choose "
                             "--generator nctrl or ctrlns, or drop --regimes.")
        opts["n_regimes"] = args.regimes
    if args.domains is not None:
        if g != "tdrl_changing":
            raise InputError(f"--domains counts observed domains; only tdrl_changing has "
                             f"them, not {g}.")
        opts["n_domains"] = args.domains
    if args.sequences is not None:
        per = {"tdrl_changing": ("n_per_domain", opts.get("n_domains", 5)),
               "ctrlns": ("n_groups", 32)}.get(g, ("n_sequences", 1))
        if args.sequences % per[1]:
            raise InputError(f"--sequences {args.sequences}: {g} draws sequences in blocks "
                             f"of {per[1]}; choose a multiple of {per[1]}.")
        opts[per[0]] = args.sequences // per[1]
    data, truth = simulate_published(g, args.seed, **opts)
    save_dataset(out, data, truth, overwrite=args.force)
    u = "hidden regimes (no u)" if data.u is None else f"u {data.u.shape}"
    print(f"wrote {out}: {g} (port of the published generator), x {data.x.shape}, {u}")
    return 0
