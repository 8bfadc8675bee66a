"""``ppl-ident simulate``: write a simulated ``.npz`` data file."""

from __future__ import annotations

from ppl_ident.cli._args import nonneg_float, positive_float, positive_int, nonneg_int

NAME = "simulate"
HELP = "Simulate domain-conditioned latents mixed by a random invertible MLP; write a .npz."


def add_arguments(p):
    from ppl_ident.data import SOURCES, SimulationConfig
    from ppl_ident.data.mixing import ACTIVATIONS

    d = SimulationConfig()
    p.add_argument("--out", required=True, help="output .npz path (never overwritten without --force)")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--latent-dim", type=positive_int, default=d.n_latent, help="n")
    p.add_argument("--data-dim", type=positive_int, default=d.data_dim, help="d >= n")
    p.add_argument("--domains", type=positive_int, default=d.n_domains,
                   help="number of domains U (identifiability needs >= 2n+1)")
    p.add_argument("--points-per-domain", type=positive_int, default=d.n_per_domain)
    p.add_argument("--mixing-layers", type=positive_int, default=d.n_layers)
    p.add_argument("--activation", choices=ACTIVATIONS, default=d.activation)
    p.add_argument("--slope", type=positive_float, default=d.slope)
    p.add_argument("--source", choices=SOURCES, default=d.source)
    p.add_argument("--df", type=positive_float, default=d.df, help="student_t degrees of freedom")
    p.add_argument("--scale-min", type=positive_float, default=d.scale_range[0])
    p.add_argument("--scale-max", type=positive_float, default=d.scale_range[1])
    p.add_argument("--loc-range", type=nonneg_float, default=d.loc_range,
                   help="per-domain locations uniform in [-r, r]; 0 keeps sources centred")
    p.add_argument("--noise-std", type=nonneg_float, default=d.noise_std)
    p.add_argument("--identical-domains", action="store_true",
                   help="give every domain the same distribution (breaks identifiability)")
    p.add_argument("--max-cond", type=positive_float, default=d.max_cond,
                   help="reject mixing layers with a larger condition number (default: the "
                        "lower quartile of random draws, as in the literature)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")


def run(args) -> int:
    from ppl_ident.data import save_dataset, simulate_domains
    from ppl_ident.errors import InputError

    from pathlib import Path

    out = Path(args.out)
    if out.suffix != ".npz":
        raise InputError(f"--out must end in .npz, got {out}; try --out {out.with_suffix('.npz')}.")
    if out.exists() and not args.force:
        raise InputError(f"{out} already exists; choose another --out or pass --force to replace it.")
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
