"""The report's account of the machine: a warning at the top when another process slowed a
family down, and the figures behind it (`compare.contention`) in a section of their own."""

from __future__ import annotations

import html
from typing import Any

from trilemma.clock import describe

WARNING_STYLE = "border:2px solid #cf222e;border-radius:8px;padding:10px 16px;background:#fff5f5;margin:12px 0"


def _e(text: Any) -> str:
    return html.escape(str(text))


def _cell(value: Any, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def budget_text(results: dict[str, Any]) -> str:
    """'the steps 300 s of one idle core run', '300 s' or '40 steps': the budget as the report
    states it (each family's steps are in the figure table)."""
    settings = results["settings"]
    if not settings.get("seconds"):
        return f"{settings['steps']} steps"
    calibrated = any((entry.get("training_provenance") or {}).get("budget", {}).get("calibration")
                     for entry in results["families"].values())
    if calibrated:
        return f"the steps {settings['seconds']:g} s of one idle core run (calibrated once on this machine)"
    return f"{settings['seconds']:g} {describe(clock_of(results))}"


def clock_of(results: dict[str, Any]) -> str:
    """The budget clock of the comparison's runs: 'cpu' or 'wall' (old results: wall)."""
    for entry in results["families"].values():
        clock = (entry.get("training_provenance") or {}).get("clock")
        if clock:
            return clock
    return "wall"


NOTE_LOSS = 0.05  # below the warning, a loss this large is still mentioned under the title


def render_warnings(results: dict[str, Any]) -> str:
    lines = results.get("warnings") or []
    if not lines:
        losses = [c.get("throughput_loss") or 0.0 for entry in results["families"].values()
                  for c in entry.get("contention") or []]
        worst = max(losses, default=0.0)
        if worst <= NOTE_LOSS:
            return ""
        return (f'<p class="note">Other processes took up to {100 * worst:.0f}% of the CPU time the '
                f"families could have had while they trained (a warning needs more than 25%); their "
                f'steps are unaffected. See <a href="#machine">The machine</a>.</p>')
    items = "".join(f"<li>{_e(line)}</li>" for line in lines)
    return (f'<div style="{WARNING_STYLE}" id="machine-warning"><b>The machine was busy during this '
            f"comparison.</b><ul>{items}</ul>See <a href=\"#machine\">The machine</a>.</div>")


def render(results: dict[str, Any]) -> str:
    unit = clock_of(results)
    rows = []
    for name, entry in results["families"].items():
        for c in entry.get("contention") or []:
            seed = next((s for s in entry["seeds"] if s["seed"] == c["seed"]), {})
            rows.append("<tr>" + "".join(f"<td class=\"num\">{v}</td>" if i else f"<td>{v}</td>" for i, v in enumerate((
                _e(name if len(entry["seeds"]) == 1 else f"{name} seed {c['seed']}"),
                _cell(seed.get("train_seconds"), ".0f"), _cell(c.get("train_wall_seconds"), ".0f"),
                _cell(None if c.get("throughput_loss") is None else 100 * c["throughput_loss"], ".0f"),
                _cell(None if c.get("others_cpu_fraction") is None else 100 * c["others_cpu_fraction"], ".0f"),
                _cell(c.get("matmul_gflops_before"), ".0f"), _cell(c.get("matmul_gflops_after"), ".0f"),
                _cell(c.get("load_average_before"), ".1f"), _cell(c.get("load_average_after"), ".1f")))) + "</tr>")
    if not rows:
        return ""
    head = "".join(f"<th>{h}</th>" for h in (
        "family", f"training {describe(unit)}", "training wall seconds", "throughput lost to other processes (%)",
        "machine CPU used by other processes (%)", "single-core matmul GFLOP/s before", "after",
        "load average before", "after"))
    calibration = results.get("matmul_peak_gflops")
    note = ("The budget is each family's steps, calibrated once on an idle core of this machine: a busy machine "
            "stretches the wall time but leaves the steps, and so the verdict, as an idle machine gives them. "
            if unit == "cpu" else "The budget counts wall seconds on the GPU. ")
    note += (f"Throughput lost: the share of the CPU time the families' processes could have had (one core each, "
             f"as many as the machine has) that went to other processes. At the start, one core did "
             f"{calibration:.0f} GFLOP/s of float32 matmul." if calibration else "")
    return (f'<h2 id="machine">The machine</h2><table><tr>{head}</tr>{"".join(rows)}</table>'
            f'<p class="note">{_e(note)}</p>')
