"""The report's "Can the features see it?" section: the sanity ladders of the features in use
(`trilemma.evaluation.ladders`), each figure's values along each ladder with its verdict."""

from __future__ import annotations

from html import escape
from typing import Any


def _value(v: float) -> str:
    return f"{v:.3g}"


def render(results: dict[str, Any]) -> str:
    ladders = results.get("ladders")
    if results.get("kind") != "image":
        return ""
    head = "<h2>Can the features see it? Sanity ladders</h2>"
    if not ladders:
        return head + "<p>No sanity ladders were measured for this comparison.</p>"
    if ladders.get("skipped"):
        return head + f"<p>No ladders: {escape(ladders['skipped'])}. Read every figure with that in mind.</p>"
    bad = ladders["untrustworthy"]
    intro = (f"<p>Real held-out images, degraded step by step, scored against as many training images "
             f"({ladders['n']} each) in the features of <code>{escape(ladders['extractor'])}</code>. A figure that "
             "does not move the way it should along a ladder cannot see that fault on this data: it is marked "
             "<b>untrustworthy</b> in the table above, and the recommendation does not rest on it.</p>")
    verdict = (f"<p><b>Untrustworthy on this data:</b> {escape(', '.join(bad))}.</p>" if bad
               else "<p>Every figure moved the way it should on every ladder.</p>")
    tables = []
    for ladder in ladders["ladders"]:
        head_row = "".join(f"<th>{escape(r)}</th>" for r in ladder["rungs"])
        rows = []
        for key, values in ladder["figures"].items():
            ok = ladder["passed"][key]
            should = "rise" if ladder["expected"][key] == "up" else "fall"
            cells = "".join(f'<td class="num">{_value(v)}</td>' for v in values)
            mark = "ok" if ok else '<b style="color:#b00">fails</b>'
            rows.append(f"<tr><th>{escape(key)} (should {should})</th>{cells}<td>{mark}</td></tr>")
        tables.append(f"<h3>{escape(ladder['what'])}</h3><table><tr><th>figure</th>{head_row}<th></th></tr>"
                      f"{''.join(rows)}</table>")
    return head + intro + verdict + "".join(tables)
