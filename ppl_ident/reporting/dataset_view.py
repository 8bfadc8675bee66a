"""Data-set-wide views of a fit that need no ground truth: the agreement between seeds, the
learned prior per domain, every row's latents coloured by domain and the distribution of the
posterior standard deviations.

These are the report's evidence on a user's own data (no ``z`` in the file): the figures are
drawn from numbers computed elsewhere (:func:`ppl_ident.workflow.latent_summary`,
:meth:`ppl_ident.families.base.ModelFamily.learned_prior_table`, ``metrics.json``). Every
figure is sized to be read at the width the report shows it (about 900 px): fonts of 11 pt
and more, axes named, legends with the names of what they show.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ppl_ident.reporting.page import pyplot, save_figure

__all__ = ["agreement_section", "plot_seed_agreement", "plot_prior_table", "plot_latents_by_domain",
           "plot_posterior_sd", "FONT", "MAX_LEGEND_DOMAINS"]

#: Base font size (pt) of these figures.
FONT = 12


def _style():
    plt = pyplot()
    plt.rcParams.update({"font.size": FONT, "axes.titlesize": FONT + 1,
                         "axes.labelsize": FONT, "legend.fontsize": FONT - 1})
    return plt


def plot_seed_agreement(matrix, path: Path, elbos=None) -> Path:
    """Heatmap of the pairwise MCC between seeds (``seed_agreement_matrix``), values written
    in the cells; ``elbos`` label each seed with its full-data ELBO."""
    plt = _style()
    m = np.asarray(matrix, float)
    k = len(m)
    fig, ax = plt.subplots(figsize=(1.2 * k + 3.2, 1.0 * k + 2.2))
    im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
    names = [f"seed {i}" + ("" if elbos is None else f"\nELBO {elbos[i]:.4g}") for i in range(k)]
    ax.set_xticks(range(k), names, fontsize=FONT - 2)
    ax.set_yticks(range(k), names, fontsize=FONT - 2)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center",
                    color="black" if m[i, j] > 0.6 else "white")
    pairs = m[np.triu_indices(k, 1)]
    ax.set_title(f"MCC between seeds' latents (mean {pairs.mean():.3f})")
    fig.colorbar(im, ax=ax, label="matched MCC")
    return save_figure(fig, path)


def plot_prior_table(loc, sd, domain_names, path: Path) -> Path:
    """The learned prior ``p(z | u)`` per domain: heatmaps of its location and standard
    deviation, domains (rows) by latents (columns)."""
    plt = _style()
    loc, sd = np.asarray(loc, float), np.asarray(sd, float)
    n_dom, n = loc.shape
    height = min(14.0, 1.6 + 0.28 * n_dom)
    fig, axes = plt.subplots(1, 2, figsize=(2.0 + 1.6 * n, height), constrained_layout=True)
    names = [str(d) for d in domain_names]
    lim = max(float(np.abs(loc).max()), 1e-6)
    for ax, values, title, kw in (
            (axes[0], loc, "prior location", dict(cmap="RdBu_r", vmin=-lim, vmax=lim)),
            (axes[1], sd, "prior standard deviation", dict(cmap="magma", vmin=0))):
        im = ax.imshow(values, aspect="auto", **kw)
        ax.set_xticks(range(n), [f"z{j}" for j in range(n)])
        step = max(1, n_dom // 25)  # at most ~25 domain names, so that they stay legible
        ax.set_yticks(range(0, n_dom, step), names[::step], fontsize=FONT - 2)
        ax.set_xlabel("latent")
        ax.set_ylabel("domain (u)")
        ax.set_title(title)
        fig.colorbar(im, ax=ax)
    fig.suptitle("learned prior p(z | u) per domain")
    return save_figure(fig, path)


#: the most domains drawn in categorical colours with a legend; beyond, each domain is
#: summarised by its mean and spread (a legend of more names than this is not read)
MAX_LEGEND_DOMAINS = 20


def plot_latents_by_domain(mean, u, domain_names, path: Path, max_points: int = 5000,
                           seed: int = 0) -> Path:
    """Pairs of latents (posterior means of every row, a seeded subset of at most
    ``max_points``), by domain.

    Up to :data:`MAX_LEGEND_DOMAINS` domains: one categorical colour per domain (``tab10``,
    ``tab20`` above 10) and a legend with the domain names. More domains: the rows in grey
    and, per domain, its mean with bars of plus and minus one standard deviation along each
    latent, in colours that only tell neighbours apart (no legend: the summary shows how the
    domains differ in position and spread, which is what identifiability needs)."""
    plt = _style()
    mean = np.asarray(mean, float)
    n = mean.shape[1]
    pairs = [(j, j + 1) for j in range(0, n - 1, 2)]
    if n % 2 and n > 1:  # an odd n: the last latent against its neighbour
        pairs.append((n - 2, n - 1))
    pairs = pairs[:3] or [(0, 0)]
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(mean), size=min(max_points, len(mean)), replace=False))
    m = mean[keep]
    u = None if u is None else np.asarray(u)[keep]
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs) + 1.5, 5.0),
                             constrained_layout=True, squeeze=False)
    labels = u is not None and u.ndim == 1
    n_dom = 0
    if labels:
        n_dom = len(domain_names) if domain_names is not None else int(u.max()) + 1
        names = ([str(d) for d in domain_names] if domain_names is not None
                 else [str(k) for k in range(n_dom)])
    few = labels and n_dom <= MAX_LEGEND_DOMAINS
    cmap = plt.get_cmap("tab10" if n_dom <= 10 else "tab20")
    for ax, (a, b) in zip(axes[0], pairs):
        if u is not None and not labels:   # continuous u: its first column as colour
            sc = ax.scatter(m[:, a], m[:, b], s=4, alpha=0.6, c=u[:, 0], cmap="viridis")
            fig.colorbar(sc, ax=ax, label="u (first column)")
        elif not labels:
            ax.scatter(m[:, a], m[:, b], s=4, alpha=0.5)
        elif few:
            for k, name in enumerate(names):
                sel = u == k
                ax.scatter(m[sel, a], m[sel, b], s=4, alpha=0.6, color=cmap(k % cmap.N),
                           label=name)
        else:
            ax.scatter(m[:, a], m[:, b], s=3, alpha=0.25, color="0.6", zorder=1)
            for k in np.unique(u):
                sel = m[u == k]
                ax.errorbar(sel[:, a].mean(), sel[:, b].mean(), xerr=sel[:, a].std(),
                            yerr=sel[:, b].std(), fmt="o", ms=4, lw=1.0,
                            color=cmap(int(k) % cmap.N), zorder=2)
        ax.set_xlabel(f"z{a} (posterior mean)")
        ax.set_ylabel(f"z{b} (posterior mean)")
    if few:
        axes[0, -1].legend(title="domain (u)", markerscale=4, loc="center left",
                           bbox_to_anchor=(1.02, 0.5), ncol=1 if n_dom <= 10 else 2)
    title = f"latents of {len(keep)} rows"
    if labels and not few:
        title += (f" (grey) and of each of the {n_dom} domains:\nmean ± 1 sd per latent "
                  "(colours only tell neighbours apart)")
    elif labels:
        title += ", coloured by domain"
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_posterior_sd(sd, path: Path) -> Path:
    """Histogram of every row's posterior standard deviation, one curve per latent."""
    plt = _style()
    sd = np.asarray(sd, float)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    hi = float(np.quantile(sd, 0.995)) if sd.size else 1.0
    bins = np.linspace(0.0, max(hi, 1e-6) * 1.05, 50)
    for j in range(sd.shape[1]):
        ax.hist(np.clip(sd[:, j], 0, bins[-1]), bins=bins, histtype="step", linewidth=1.8,
                label=f"z{j} (median {np.median(sd[:, j]):.3f})")
    ax.set_xlabel("posterior standard deviation of the latent")
    ax.set_ylabel("rows")
    ax.set_title(f"posterior sd over {len(sd)} rows")
    ax.legend(title="latent")
    return save_figure(fig, path)


def agreement_section(run: Path, metrics: dict):
    """The report's "Agreement between seeds" section of a run: ``(figure path or None,
    HTML, numbers or None)``; without ``seed_agreement_matrix`` (one seed) a note on how to
    measure it."""
    import html

    from ppl_ident.diagnostics.agreement import agreement_verdict
    from ppl_ident.reporting.page import img

    matrix = metrics.get("seed_agreement_matrix")
    if matrix is None:
        return None, ("<p>Not measured: this run was fitted with one seed. Fit with "
                      "<code>ppl-ident fit ... --seeds 3</code> to measure whether fits from "
                      "different starts find the same latents (the evidence of "
                      "identifiability that needs no true latents).</p>"), None
    path = plot_seed_agreement(matrix, Path(run) / "seed_agreement.png",
                               metrics.get("seed_elbos"))
    k = len(matrix)
    text = (img(path, "seed agreement")
            + f"<p>{html.escape(agreement_verdict(metrics['seed_agreement'], k))} Each cell is "
            "the MCC between two seeds' posterior means of every row after Hungarian "
            "matching; the run keeps the seed with the best ELBO (never chosen by true "
            "latents).</p>")
    return path, text, {"mean": metrics["seed_agreement"],
                        "min": metrics.get("seed_agreement_min"), "seeds": k}
