"""The report's first lines: the verdict stored by `fit --verdict` or `check --out RUN/check`."""

import json

from ppl_ident.reporting.verdict import stored_evidence, verdict_html

EVIDENCE = {"applicable": True,
            "verdict": {"word": "not shown", "reason": "the prior changes in 3 independent "
                        "directions beyond chance, fewer than the n = 5 latents need.",
                        "next": "more values of u."},
            "null": {"permutations": 2, "seeds": 3, "rows": 8192, "values": 30}}


def test_without_a_stored_test_the_report_says_how_to_run_one(tmp_path):
    text = verdict_html(tmp_path, {}, "ivae", prior_depends_on_u=True)
    assert "Identified? Not tested yet." in text and "check RUN --out RUN" in text


def test_a_vae_needs_no_refit_to_be_contradicted(tmp_path):
    text = verdict_html(tmp_path, {}, "vae", prior_depends_on_u=False)
    assert "Identified? Contradicted." in text and "does not depend on u" in text


def test_the_check_result_and_the_fit_metrics_are_read_in_that_order(tmp_path):
    (tmp_path / "check").mkdir()
    (tmp_path / "check" / "check.json").write_text(json.dumps({"evidence": EVIDENCE}))
    found, source = stored_evidence(tmp_path, {})
    assert found == EVIDENCE and "check/check.json" in source
    text = verdict_html(tmp_path, {}, "ivae", prior_depends_on_u=True)
    assert "Identified? Not shown." in text and "fewer than the n = 5" in text
    assert "2 refits with u permuted across rows, 3 seeds each" in text
    assert "Next: more values of u." in text
    supported = {**EVIDENCE, "verdict": {"word": "supported", "reason": "r.", "next": ""}}
    found, source = stored_evidence(tmp_path, {"evidence": supported})
    assert found["verdict"]["word"] == "supported" and "metrics.json" in source


def test_the_report_tests_the_verdict_once_and_keeps_the_check(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import ppl_ident.evidence
    from ppl_ident.reporting.report import ensure_verdict

    calls = []

    def fake_evidence(fitted, data, *, permutations, seed):
        calls.append(permutations)
        return EVIDENCE

    monkeypatch.setattr(ppl_ident.evidence, "identifiability_evidence", fake_evidence)
    (tmp_path / "check").mkdir()
    (tmp_path / "check" / "check.json").write_text(json.dumps({"kind": "run", "model": "ivae"}))
    ivae = SimpleNamespace(spec=SimpleNamespace(name="ivae", config={"name": "ivae"}), metrics={})
    ensure_verdict(tmp_path, ivae, None, permutations=2)
    stored = json.loads((tmp_path / "check" / "check.json").read_text())
    assert stored["model"] == "ivae" and stored["evidence"] == EVIDENCE and calls == [2]
    ensure_verdict(tmp_path, ivae, None, permutations=2)  # stored: not tested again
    assert calls == [2]
    # a VAE's verdict needs no refit; a fit --verdict run has its own
    vae = SimpleNamespace(spec=SimpleNamespace(name="vae", config={"name": "vae"}), metrics={})
    ensure_verdict(tmp_path / "other", vae, None)
    tested = SimpleNamespace(spec=ivae.spec, metrics={"evidence": EVIDENCE})
    ensure_verdict(tmp_path / "other", tested, None)
    assert calls == [2] and not (tmp_path / "other").exists()
