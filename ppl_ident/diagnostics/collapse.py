"""Collapsed latents: latents the data say nothing about.

A variational fit can switch a latent off: its posterior ``q(z_k | x, u)`` stays at its prior
``p(z_k | u)`` for every observation, the decoder ignores it, and the ELBO pays nothing for it
(posterior collapse). Such a fit can reconstruct well and still miss a true latent, and no
ground truth is needed to see it: the posterior standard deviation of a collapsed latent equals
the prior's, while an informed latent's is a small fraction of it.

:func:`latent_activity` scores every latent by the ratio of the two, averaged over
observations (a scale-free version of the "active units" count of Burda, Grosse &
Salakhutdinov 2016, conditional on ``u``, so that a prior whose location moves with the domain
does not make a collapsed latent look active). Pure NumPy; the families compute the moments.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["COLLAPSE_RATIO", "LatentActivity", "latent_activity", "collapse_message",
           "activity_to_dict"]

#: A latent whose posterior sd is on average at least this fraction of its prior sd counts as
#: collapsed: the data remove less than a fifth of the prior's uncertainty about it. Informed
#: latents of noise-free or low-noise data sit at 0.01-0.2 (the default setting: below 0.1).
COLLAPSE_RATIO = 0.8


class LatentActivity(NamedTuple):
    """Per-latent posterior-to-prior standard-deviation ratios.

    Attributes
    ----------
    sd_ratio : ``(n,)``
        Mean over observations of ``sd q(z_k | x, u) / sd p(z_k | u)``: about 1 for a collapsed
        latent, near 0 for one the data pin down.
    collapsed : tuple of int
        Latents with ``sd_ratio >= threshold``.
    threshold : float
    """

    sd_ratio: np.ndarray
    collapsed: tuple
    threshold: float


def latent_activity(post_sd, prior_sd, threshold: float = COLLAPSE_RATIO) -> LatentActivity:
    """Score every latent by how much the data shrink its prior.

    Parameters
    ----------
    post_sd : array ``(N, n)``
        Posterior standard deviations ``sd q(z_k | x_i, u_i)``.
    prior_sd : array ``(N, n)`` or ``(n,)``
        Prior standard deviations ``sd p(z_k | u_i)`` at the same observations.
    threshold : float
        Ratio at or above which a latent counts as collapsed.

    Returns
    -------
    LatentActivity

    Examples
    --------
    >>> act = latent_activity(np.array([[0.05, 1.0], [0.1, 2.0]]), np.array([[1.0, 1.0],
    ...                                                                     [1.0, 2.0]]))
    >>> act.sd_ratio.round(3).tolist(), act.collapsed
    ([0.075, 1.0], (1,))
    """
    post = np.asarray(post_sd, float)
    prior = np.broadcast_to(np.asarray(prior_sd, float), post.shape)
    if post.ndim != 2:
        raise ValueError(f"post_sd must be (N, n), got shape {post.shape}")
    ratio = np.mean(post / np.maximum(prior, 1e-12), axis=0)
    collapsed = tuple(int(k) for k in np.flatnonzero(ratio >= threshold))
    return LatentActivity(ratio, collapsed, float(threshold))


def collapse_message(activity: LatentActivity) -> str | None:
    """A plain-words warning naming the collapsed latents, or None when there are none."""
    if not activity.collapsed:
        return None
    names = ", ".join(f"z{k} (posterior sd {activity.sd_ratio[k]:.2f} of the prior's)"
                      for k in activity.collapsed)
    return (f"collapsed latent{'s' if len(activity.collapsed) > 1 else ''}: {names}. The data "
            "say almost nothing about them: the fit has switched them off, so it cannot have "
            "recovered every latent (more steps, --restarts 3, or a smaller --latent-dim if the "
            "data have fewer latents).")


def activity_to_dict(activity: LatentActivity) -> dict:
    """JSON form (``metrics.json["latent_activity"]``)."""
    return {"sd_ratio": [round(float(r), 6) for r in activity.sd_ratio],
            "collapsed": list(activity.collapsed), "threshold": activity.threshold,
            "message": collapse_message(activity)}
