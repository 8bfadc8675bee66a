"""The report's first lines: the identifiability verdict, how it was reached, what to do next.

The verdict is the one ``ppl-ident check`` prints (:mod:`ppl_ident.evidence`): stored in
``metrics.json`` by ``fit --verdict``, or in ``RUN/check/check.json`` by
``check RUN --out RUN/check``. The report does not refit the permuted-label null itself (it
costs two refits of three seeds); without a stored test it says how to run one, except for a
model whose prior ignores ``u``, whose verdict needs no refit.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

__all__ = ["stored_evidence", "untestable_html", "verdict_html"]


def stored_evidence(run: Path, metrics: dict) -> tuple[dict | None, str]:
    """The run's verdict test and where it was found: ``metrics.json`` (``fit --verdict``)
    first, then ``check/check.json`` or ``check.json`` of the run directory."""
    if metrics.get("evidence") is not None:
        return metrics["evidence"], "fit --verdict (metrics.json)"
    for path in (Path(run) / "check" / "check.json", Path(run) / "check.json"):
        if path.is_file():
            try:
                found = json.loads(path.read_text()).get("evidence")
            except (OSError, ValueError):
                continue
            if found is not None:
                return found, f"ppl-ident check ({path.relative_to(run)})"
    return None, ""


def verdict_html(run: Path, metrics: dict, model: str, prior_depends_on_u: bool) -> str:
    """HTML of the verdict block (a heading line, the reason, how, next)."""
    from ppl_ident.diagnostics.verdict import identifiability_verdict

    evidence, source = stored_evidence(run, metrics)
    if evidence is None and not prior_depends_on_u:
        verdict = identifiability_verdict(prior_depends_on_u=False)._asdict()
        how = f"the {model} model's prior does not depend on u (no refit needed)"
    elif evidence is None:
        return ('<div class="verdict"><p><b>Identified? Not tested yet.</b> The verdict is '
                "earned against refits with the labels u permuted across rows (2 refits of 3 "
                "seeds each): <code>ppl-ident report RUN</code> runs it unless "
                "<code>--null-fits 0</code>; so do <code>ppl-ident check RUN --out RUN</code> "
                "and <code>fit --verdict</code>.</p></div>")
    else:
        verdict = evidence["verdict"]
        null = evidence.get("null")
        how = (f"{source}: {null['permutations']} refits with u permuted across rows, "
               f"{null['seeds']} seeds each, compared on {null['rows']} rows; no true latent "
               "read" if null else source)
    word = verdict["word"]
    nxt = f"<p>Next: {html.escape(verdict['next'])}</p>" if verdict.get("next") else ""
    return (f'<div class="verdict"><p><b>Identified? {html.escape(word.capitalize())}.</b> '
            f"{html.escape(verdict['reason'])}</p><p class=\"note\">How: {html.escape(how)}."
            f"</p>{nxt}</div>")


def untestable_html(label: str) -> str:
    """HTML of the verdict block of a family without the permuted-label test
    (:attr:`~ppl_ident.families.base.ModelFamily.permutation_null` false); ``label`` is the
    family in words."""
    return ('<div class="verdict"><p><b>Identified? Not tested.</b> The verdict test against '
            f"refits with permuted labels is not implemented for {html.escape(label)} models; "
            "read the check of the learned model (<code>ppl-ident check RUN</code>) and the "
            "agreement between seeds below.</p></div>")
