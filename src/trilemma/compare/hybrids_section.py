"""The report's "Beyond the trilemma" section: where the hybrids (flow matching, the
denoising-diffusion GAN, latent diffusion) sit against the classic three on fidelity, diversity
and sampling speed, diffusion's and flow matching's quality against network evaluations, and the
hybrids' promises judged on this run's figures. Shown when the comparison trained a hybrid."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from trilemma.compare import figures
from trilemma.families import registered


def _e(text: Any) -> str:
    return html.escape(str(text))


def _num(value: Any, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def hybrids_in(results: dict[str, Any]) -> list[str]:
    known = registered()
    return [n for n in results["families"] if n in known and known[n].hybrid]


def _table(results: dict[str, Any], hybrids: list[str]) -> str:
    families = results["families"]
    fid_name = next(iter(families.values())).get("fid_name") or "FD"
    rows = []
    for name, f in families.items():
        kind = "hybrid" if name in hybrids else "classic"
        cells = [_num(f.get("fid"), ".1f"), _num(f.get("reconstruction_fid"), ".1f"), _num(f.get("recall"), ".2f"),
                 _num(f.get("coverage"), ".2f"), _num(f.get("samples_per_s"), ".1f"), _num(f.get("nfe"), ".0f")]
        rows.append(f"<tr><th>{_e(name)}</th><td>{kind}</td>"
                    + "".join(f'<td class="num">{c}</td>' for c in cells) + "</tr>")
    head = "".join(f"<th>{_e(h)}</th>" for h in (
        "family", "kind", f"{fid_name} ↓", "autoencoder floor ↓", "recall ↑", "coverage ↑",
        "samples/s ↑", "NFE ↓"))
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _claims(results: dict[str, Any], hybrids: list[str], colours: dict[str, str]) -> str:
    rows = "".join(
        f"<tr><td>{_e(c['claim'])}</td><td class=\"verdict\" style=\"color:{colours[c['verdict']]}\">"
        f"{_e(c['verdict'])}</td><td>{_e(c['evidence'])}</td></tr>"
        for c in results["claims"] if c["family"] in hybrids)
    return f"<table><tr><th>claim</th><th>this run</th><th>evidence</th></tr>{rows}</table>" if rows else ""


def render(results: dict[str, Any], img: Callable[[bytes, str], str], colours: dict[str, str]) -> str:
    hybrids = hybrids_in(results)
    if not hybrids:
        return ""
    parts = ["<h2>Beyond the trilemma</h2>",
             ('<p class="note">The hybrids (stars) against the classic families (circles), under the same '
             "budget: up-left is worse, down-right is better; the larger the marker the higher the recall. "
             "The autoencoder floor is the FD of latent diffusion's reconstructions of held-out data: "
             "its samples cannot score better than its decoder can express.</p>"),
             img(figures.beyond_trilemma(results), "every family on fidelity, diversity and speed"),
             _table(results, hybrids)]
    curves = figures.fid_against_nfe(results, only=("diffusion", "flow"))
    if curves is not None:
        parts += ["<h3>Diffusion and flow matching: quality against network evaluations</h3>",
                  img(curves, "FD against NFE, diffusion and flow matching")]
    parts += ["<h3>What the hybrids promise, checked</h3>", _claims(results, hybrids, colours)]
    return "\n".join(p for p in parts if p)
