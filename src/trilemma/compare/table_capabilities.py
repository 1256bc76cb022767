"""The capabilities section of a table comparison (`compare --capabilities` on a CSV): imputation
against mean / mode and k-NN, anomaly scores per row, generated rows as augmentation, and, for a
conditional comparison, rows made for each value of the target."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import Any


def measure(runs: dict[str, Any], dataset: Any, *, conditional: bool, seed: int = 0,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    from trilemma.capabilities.anomaly import score_method
    from trilemma.capabilities.inpainting import inpainting_method
    from trilemma.evaluation.tables import default_target
    from trilemma.tables.imputation import measure_imputation
    from trilemma.tables.row_tasks import anomaly_auroc, augmentation_gain, conditional_agreement

    families = {name: run.family for name, run in runs.items()}
    section: dict[str, Any] = {"kind": "table", "methods": {
        name: {"imputation": _able(inpainting_method, f), "anomaly score": _able(score_method, f)}
        for name, f in families.items()}}
    log("capabilities: imputing 20% of the cells of 500 held-out rows (families, mean / mode, k-NN)")
    started = time.perf_counter()
    section["imputation"] = measure_imputation(
        {n: f for n, f in families.items() if section["methods"][n]["imputation"]}, dataset, seed=seed)
    section["imputation"]["seconds"] = time.perf_counter() - started
    log("capabilities: anomaly scores, held-out rows against rows of shuffled cells")
    section["anomaly"] = {name: anomaly_auroc(f, dataset, seed=seed) for name, f in families.items()
                          if section["methods"][name]["anomaly score"]}
    target = default_target(dataset)
    if target is not None:
        log(f"capabilities: generated rows as augmentation of 100 real rows (predicting '{target}')")
        section["augmentation"] = augmentation_gain(families, dataset, target)
    if conditional:
        log(f"capabilities: rows made for each value of '{dataset.target}'")
        section["conditional"] = {name: conditional_agreement(f, dataset, seed=seed) for name, f in families.items()}
    return section


def _able(method: Callable[[Any], str], family: Any) -> str | None:
    """How the family does a task, or None when it cannot (the method refuses it)."""
    from trilemma.errors import UnsupportedRequest

    try:
        return method(family)
    except UnsupportedRequest:
        return None


def _e(text: Any) -> str:
    return html.escape(str(text))


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "–" if value is None else format(value, spec)


def render(section: dict[str, Any]) -> str:
    imputation = section["imputation"]
    parts = ["<h2>Capabilities</h2>",
             (f"<h3>Imputation: {imputation['share_hidden']:.0%} of the known cells of {imputation['rows']} held-out "
             "rows hidden, then filled</h3>"),
             "<table><tr><th>method</th><th>numbers: RMSE / column SD ↓</th><th>categories: share right ↑</th></tr>"
             + "".join(f"<tr><td>{_e(n)}{' (' + _e(section['methods'][n]['imputation']) + ')' if n in section['methods'] else ''}"
                       f"</td><td class=\"num\">{_fmt(r['numeric_nrmse'])}</td>"
                       f"<td class=\"num\">{_fmt(r['category_accuracy'])}</td></tr>"
                       for n, r in imputation["methods"].items()) + "</table>",
             ("<p class=\"note\">Mean imputation scores about 1 on numbers by construction, and the conditional mean "
             "is the best any method can do on RMSE; a generative model fills in a draw, not a mean, so on a column "
             "unrelated to the rest its error is about √2 of the spread. Its gain shows on related columns.</p>"),
             "<h3>Anomaly scores per row: held-out rows against rows of shuffled cells</h3>",
             "<table><tr><th>family</th><th>score</th><th>AUROC</th></tr>"
             + "".join(f"<tr><td>{_e(n)}</td><td>{_e(r['method'])}</td><td class=\"num\">{r['auroc']:.3f}</td></tr>"
                       for n, r in section["anomaly"].items()) + "</table>",
             ("<p class=\"note\">Every cell of a shuffled row is a real value; only the relations between its cells "
             "are broken. 0.5 is chance.</p>")]
    if "augmentation" in section:
        a = section["augmentation"]
        parts += [(f"<h3>Generated rows as augmentation ({a['n_real']} real rows + {a['n_generated']} generated, "
                  f"predicting '{_e(a['target'])}', mean of {len(a['seeds'])} seeds)</h3>"),
                  "<table><tr><th>training set</th><th>held-out accuracy</th><th>gain over real only</th></tr>"
                  f"<tr><td>real only</td><td class=\"num\">{a['real_only_accuracy']:.3f}</td><td></td></tr>"
                  + "".join(f"<tr><td>real + {_e(n)}</td><td class=\"num\">{r['accuracy']:.3f}</td>"
                            f"<td class=\"num\">{r['gain']:+.3f}</td></tr>" for n, r in a["families"].items())
                  + "</table>"]
    if "conditional" in section:
        parts += ["<h3>Rows made for each value of the target</h3><table><tr><th>family</th><th>rows whose target "
                  "cell holds the value asked for</th></tr>" + "".join(
                      f"<tr><td>{_e(n)}</td><td class=\"num\">{r['agreement']:.3f}</td></tr>"
                      for n, r in section["conditional"].items()) + "</table>"]
    return "\n".join(parts)
