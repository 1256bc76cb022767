"""report.html: one self-contained page (plots and pictures embedded as data URIs, no external
URL, no network) that shows a comparison's trade-offs and its recommendation."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from trilemma.compare import (
    figures,
    hybrids_section,
    ladders_section,
    machine_section,
    table_section,
)
from trilemma.compare.scoring import CRITERIA
from trilemma.io import write_text
from trilemma.metrics.catalogue import BY_KEY, RESULT_METRICS, TABLES, Metric

VERDICT_COLOURS = {"supported": "#1a7f37", "contradicted": "#cf222e", "mixed": "#9a6700",
                   "not measured": "#57606a"}

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
main{max-width:1100px;margin:0 auto;padding:24px 28px 60px;background:#fff}
h1{margin:0 0 4px;font-size:28px} h2{margin-top:36px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.untrusted{color:#b00;font-weight:normal;font-size:12px}
.sub{color:#57606a;margin:0 0 18px}
.box{border:2px solid #2ca02c;border-radius:8px;padding:12px 18px;background:#f0fff4}
.box h2{margin-top:4px;border:none}
table{border-collapse:collapse;margin:10px 0;font-size:14px}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa} td.num{text-align:right;font-variant-numeric:tabular-nums}
th.group{background:#eaeef2;font-weight:600}
.grids{display:flex;gap:18px;flex-wrap:wrap}
.grids figure{margin:0} figcaption{font-size:13px;color:#57606a;max-width:330px}
.grids img{width:330px;image-rendering:pixelated}
img{max-width:100%} .verdict{font-weight:600;white-space:nowrap}
.note{font-size:13px;color:#57606a}
"""

# Runs before anything else, so that any script error on the page is counted; the load
# handler records how many images decoded. A headless browser test reads both back.
CHECKS = """
window.__reportErrors = [];
window.addEventListener('error', function (e) { window.__reportErrors.push(String(e.message || e)); }, true);
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var ok = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images-loaded', ok + '/' + images.length);
  document.body.setAttribute('data-script-errors', String(window.__reportErrors.length));
});
"""

def _e(text: Any) -> str:
    return html.escape(str(text))


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "–"
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return _e(value)


def _figure(metric: Metric, value: Any) -> str:
    return "–" if value is None else _e(metric.text(value))


def _metrics_table(results: dict[str, Any]) -> str:
    """Every results column with a row of its own, grouped by the tables of its declaration; a
    table's baselines and real-rows ceiling are columns after the families'."""
    families = {**results["families"],
                **{b["label"]: b for b in (results.get("baselines") or {}).values()}}
    fid_name = next(iter(families.values())).get("fid_name") or "FD"
    untrusted = set((results.get("ladders") or {}).get("untrustworthy") or [])
    head = "".join(f"<th>{_e(n)}</th>" for n in families)
    rows = []
    for table in TABLES:
        shown = [m for m in RESULT_METRICS if m.table == table and m.within is None
                 and any(f.get(m.results_column) is not None for f in families.values())]
        if shown:
            rows.append(f'<tr><th class="group" colspan="{len(families) + 1}">{_e(table)}</th></tr>')
        rows += [_metric_row(metric, families, fid_name, metric.results_column in untrusted) for metric in shown]
    return f"<table><tr><th>figure</th>{head}</tr>{''.join(rows)}</table>"


def _metric_row(metric: Metric, families: dict[str, Any], fid_name: str, untrusted: bool = False) -> str:
    column = metric.results_column
    cells = []
    for f in families.values():
        text = _figure(metric, f.get(column))
        if f.get(f"{column}_std") is not None:
            text += f" ± {_figure(metric, f[f'{column}_std'])}"
        if metric.out_of is not None and f.get(column) is not None:
            total = BY_KEY[metric.out_of]
            text += f" / {_figure(total, f.get(total.results_column))}"
        cells.append(f'<td class="num">{text}</td>')
    mark = ' <span class="untrusted">(untrustworthy here: failed a sanity ladder)</span>' if untrusted else ""
    return f"<tr><th>{_e(metric.heading(fid_name))}{mark}</th>{''.join(cells)}</tr>"


def _recommendation(results: dict[str, Any]) -> str:
    rec = results["recommendation"]
    scores = rec["scores"]
    criteria = [c for c in CRITERIA
                if any(s.get(c) is not None for s in scores.values())]
    head = "".join(f"<th>{c} (weight {rec['priorities'].get(c, 0):g})</th>" for c in criteria)
    rows = "".join(
        f"<tr><th>{_e(n)}</th>" + "".join(f'<td class="num">{_fmt(scores[n].get(c), ".2f")}</td>' for c in criteria)
        + f'<td class="num"><b>{rec["weighted_score"][n]:.2f}</b></td></tr>' for n in rec["ranking"])
    reasons = "".join(f"<li>{_e(r)}</li>" for r in rec["reasons"])
    return (f'<div class="box"><h2>Recommendation: {_e(rec["family"])}</h2><ul>{reasons}</ul>'
            f"<table><tr><th>family</th>{head}<th>weighted score</th></tr>{rows}</table>"
            f'<p class="note">Scores are relative to the best family of this comparison (1 = best; privacy, '
            f'where measured, is absolute); within reach: {_e(rec["reach_rule"])}. Change the weights with '
            f'<code>--priorities fidelity=W,diversity=W,speed=W,stability=W,privacy=W</code>.</p></div>')


def _claims(results: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{_e(c['claim'])}</td><td class=\"verdict\" style=\"color:{VERDICT_COLOURS[c['verdict']]}\">"
        f"{_e(c['verdict'])}</td><td>{_e(c['evidence'])}</td></tr>" for c in results["claims"])
    return f"<table><tr><th>claim</th><th>this run</th><th>evidence</th></tr>{rows}</table>"


def _grids(results: dict[str, Any]) -> str:
    items = []
    for name, entry in results["families"].items():
        path = Path(entry["sample_grids"][0])
        if not path.exists():
            continue
        caption = (f"{name}: {entry.get('fid_name') or 'FD'} {entry['fid']:.1f}, {entry['steps']:.0f} steps "
                   f"in {entry['train_seconds']:.0f} s, {entry['samples_per_s']:.0f} samples/s")
        items.append(f"<figure>{_img(path.read_bytes(), f'{name} samples')}<figcaption>{_e(caption)}</figcaption></figure>")
    return f'<div class="grids">{"".join(items)}</div>'


def _nfe_table(results: dict[str, Any]) -> str:
    rows = []
    for name, entry in results["families"].items():
        for r in entry.get("nfe_curve") or []:
            rows.append(f"<tr><td>{_e(name)}</td><td>{_e(r['sampler'])}</td><td class=\"num\">{r['steps']}</td>"
                        f"<td class=\"num\">{r['nfe']}</td><td class=\"num\">{_figure(BY_KEY['fid'], r['fid'])}</td>"
                        f"<td class=\"num\">{r['samples_per_s']:.1f}</td><td class=\"num\">{r['n_generated']}</td></tr>")
    if not rows:
        return ""
    return ("<table><tr><th>family</th><th>sampler</th><th>steps</th><th>NFE</th><th>FD</th>"
            f"<th>samples/s</th><th>n</th></tr>{''.join(rows)}</table>")


def _provenance(results: dict[str, Any]) -> str:
    settings = results["settings"]
    rows = []
    for name, entry in results["families"].items():
        p, t = entry["provenance"], entry["training_provenance"]
        rows.append(
            "<tr>" + "".join(f"<td>{_e(v)}</td>" for v in (
                name, f"{p.get('extractor')} ({str(p.get('extractor_sha256') or '')[:12]})", p.get("reference"),
                p.get("n_real"), p.get("n_generated"), f"{p.get('sampler')}, NFE {p.get('nfe')}",
                ", ".join(str(s["seed"]) for s in entry["seeds"]), p.get("evaluation_seed"),
                _budget(t.get("budget")), f"{(t.get('device') or {}).get('name', '')} {t.get('precision')}",
                ", ".join(entry["run_dirs"]))) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in (
        "family", "features (sha256)", "reference split", "n real", "n generated", "sampler",
        "training seeds", "evaluation seed", "training budget", "device, precision", "run folders"))
    curve_note = (f"Curve points: {settings['n_curve']} samples each at {settings['evaluations']} "
                  f"equal fractions of the budget (evaluation time not counted against it); the end "
                  f"point reuses the first {settings['n_curve']} final samples. FD-against-NFE: "
                  f"{settings['n_nfe']} samples per point, same seed for every sampler.")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table><p class=\"note\">{_e(curve_note)}</p>"


def _budget(budget: dict[str, Any] | None) -> str:
    if not budget:
        return "–"
    if budget.get("seconds"):
        return f"{budget['seconds']:g} {'CPU-s' if budget.get('clock') == 'cpu' else 's'}"
    return f"{budget.get('steps')} steps"


def _capabilities(results: dict[str, Any]) -> str:
    section = results.get("capabilities")
    if not section:
        return ""
    from trilemma.compare.capabilities_section import render

    return render(section, _img)


def render_report(results: dict[str, Any]) -> str:
    settings, families = results["settings"], results["families"]
    scores = results["recommendation"]["scores"]
    budget = machine_section.budget_text(results)
    device = results["device"].get("name") or results["device"].get("type")
    notes = sorted({n for f in families.values() for n in f.get("notes") or [] if n})
    nfe_png = figures.fid_against_nfe(results)
    subtitle = (
        f"Each family trained for {budget} (the same budget), {settings['seeds']} seed(s), on "
        f"{device} ({results.get('matmul_peak_precision', 'fp32')} matmul peak "
        f"{results['matmul_peak_gflops']:.0f} GFLOP/s); "
        f"{results['data'].get('n_train', '')} training and {results['data'].get('n_heldout', '')} "
        f"held-out examples. Created {results['created']} by trilemma {results['trilemma_version']}.")
    parts = [
        f"<h1>trilemma: {', '.join(_e(n) for n in families)} on {_e(results['data']['name'])}</h1>",
        f'<p class="sub">{_e(subtitle)}</p>',
        machine_section.render_warnings(results),
        _recommendation(results),
        "<h2>The trilemma at a glance</h2>",
        _img(figures.trilemma_triangle(results, scores), "trilemma triangle"),
    ]
    if results.get("kind") == "table":
        parts += [table_section.render(results, _img), "<h2>Every figure</h2>", _metrics_table(results)]
    else:
        parts += [
            "<h2>Samples</h2>", _grids(results),
            "<h2>Every figure</h2>", _metrics_table(results), ladders_section.render(results),
            "<h2>Quality against training time</h2>",
            _img(figures.training_curves(results), "quality during training"),
            "<h2>Fidelity against diversity</h2>",
            _img(figures.fidelity_diversity(results), "fidelity against diversity"),
            "<h2>Quality against sampling speed</h2>",
            _img(figures.speed_quality(results), "quality against speed"),
        ]
    if nfe_png is not None:
        parts += ["<h2>Iterative samplers: quality against network evaluations</h2>",
                  _img(nfe_png, "FD against NFE"), _nfe_table(results)]
    parts += [hybrids_section.render(results, _img, VERDICT_COLOURS),
              "<h2>The folklore, checked</h2>", _claims(results), _capabilities(results),
              machine_section.render(results), "<h2>Provenance</h2>", _provenance(results)]
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    body = "\n".join(p for p in parts if p)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>trilemma report: {_e(results['data']['name'])}</title>"
            f"<script>{CHECKS}</script><style>{STYLE}</style></head>"
            f"<body><main>\n{body}\n</main></body></html>\n")


def write_report(results: dict[str, Any], out_dir: Path) -> Path:
    return write_text(Path(out_dir) / "report.html", render_report(results))
