"""The HTML report of `cnncheck grade --html FILE`: one self-contained page for course staff.

The class table (sortable by clicking a header), then per submission its findings (one per fault,
as the text report opens with, cnncheck.findings), its failing checks, hints,
heat maps drawn as inline SVG and the worst elements in a table. No network, no external file.
Every text comes from the records through Jinja2 with autoescaping on: error messages and notes
come from student code, so none of them can become markup.
"""
from __future__ import annotations

import jinja2
from markupsafe import Markup

from cnncheck.gradebook import all_layers, class_summary, points_text
from cnncheck.diagnose import SHADES, heat_map
from cnncheck.gradcheck import Check
from cnncheck.i18n import _, msg, tr, use
from cnncheck.report import failed_head

CELL = 18  # pixels per heat map cell

TEMPLATE = """<!DOCTYPE html>
<html lang="{{ lang }}"><head><meta charset="utf-8"><title>{{ _("cnncheck grades") }}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { padding: .25em .6em; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
#class th { cursor: pointer; background: #f3f3f3; user-select: none; }
#class th.asc::after { content: " \\25B2"; } #class th.desc::after { content: " \\25BC"; }
.pass { color: #17752b; } .fail { color: #b00020; font-weight: bold; } .dim { color: #888; }
.hint { background: #fff7d6; padding: .3em .5em; } .error { color: #b00020; white-space: pre-wrap; }
section { border-top: 2px solid #ccc; margin-top: 1.5em; } pre { white-space: pre-wrap; }
svg { border: 1px solid #ccc; margin: .3em 0; }
</style></head>
<body>
<h1>{{ _("cnncheck grades") }}</h1>
<p id="summary">{{ summary }}</p>
<table id="class"><thead><tr>
<th data-type="text">{{ _("submission") }}</th>{% for layer in layers %}<th data-type="number">{{ layer }}</th>{% endfor %}
<th data-type="number">{{ _("score") }}</th><th data-type="number">{{ _("max") }}</th><th data-type="text">{{ _("passed") }}</th>
<th data-type="number">{{ _("time (s)") }}</th><th data-type="text">{{ _("main hint") }}</th></tr></thead><tbody>
{% for r in records %}<tr class="submission">
<td data-sort="{{ r.submission }}"><a href="#s{{ loop.index }}">{{ r.submission }}</a></td>
{% for layer in layers %}{% set x = r.layers.get(layer) %}
<td data-sort="{{ x.score if x else -1 }}" class="{{ 'fail' if r.error else 'dim' if not x or not x.defined else 'pass' if x.passed else 'fail' }}">
{%- if r.error %}{{ _("error") }}{% elif not x %}-{% elif not x.defined %}{{ _("missing") }}{% else %}{{ x.cases - x.failed|length }}/{{ x.cases }}{% endif %}</td>
{% endfor %}
<td data-sort="{{ r.score }}">{{ pts(r.score) }}</td><td data-sort="{{ r.max_score }}">{{ pts(r.max_score) }}</td>
<td data-sort="{{ r.passed }}" class="{{ 'pass' if r.passed else 'fail' }}">{{ _("yes") if r.passed else _("no") }}</td>
<td data-sort="{{ r.seconds }}">{{ '%.1f' % r.seconds }}</td><td data-sort="{{ r.main or '' }}">{{ r.main or '' }}</td>
</tr>{% endfor %}
</tbody></table>
{% for r in records %}
<section id="s{{ loop.index }}" class="detail"><h2>{{ r.submission }}
<span class="{{ 'pass' if r.passed else 'fail' }}">{{ pts(r.score) }} / {{ pts(r.max_score) }}</span></h2>
{% if r.error %}<p class="error">{{ _("cannot check this submission: {error}").format(error=tr(r.error)) }}</p>{% endif %}
{% if r.findings %}<ol class="findings">{% for f in r.findings %}<li><span class="hint">{{ tr(f.text) }}</span>
{% if f.where %}<div><code>{{ _("at {where}").format(where=f.where) }}</code> <code>{{ f.code or '' }}</code></div>{% endif %}
<div class="dim">{{ tr(f.pattern) }}</div></li>{% endfor %}</ol>{% endif %}
{% for n in r.notes %}<p class="dim">{{ _("note: {note}").format(note=tr(n)) }}</p>{% endfor %}
{% for layer in r.missing %}<p class="fail">{{ _("{layer}: the file defines no {layer} layer (0 of {points} points)").format(
layer=layer, points=pts(r.layers[layer].max_score)) }}</p>{% endfor %}
{% for c in r.failing %}
<h3>{{ c.name }} <span class="dim">{{ _("(0 of {points} points)").format(points=pts(c.max_points)) }}</span></h3>
{% if c.error and not r.error %}<p class="error">{{ tr(c.error) }}</p>{% endif %}
{% for k in c.failed_checks %}
<p class="fail">{{ _("{check} failed: {what}").format(check=k.name, what=k.head) }}{% if k.rel_error is not none %}{{ _(" (rel error {rel})").format(rel='%.2e' % k.rel_error) }}{% endif %}</p>
{% if k.svg %}<div><div class="dim">{{ _("|analytic - numerical| by {grid}:").format(grid=k.grid) }}</div>{{ k.svg }}</div>{% endif %}
{% if k.worst %}<table class="worst"><tr><th>{{ _("at") }}</th><th>{{ k.mine }}</th><th>{{ k.theirs }}</th><th>{{ _("allowed") }}</th></tr>
{% for w in k.worst %}<tr><td>{{ w.get('index', w.get('direction')) }}</td><td>{{ fmt(w.analytic) }}</td>
<td>{{ fmt(w.numerical) }}</td><td>{{ fmt(w.allowed) }}</td></tr>{% endfor %}</table>{% endif %}
{% endfor %}
{% if c.hint and c.hint not in (c.error or '') %}<p class="hint">{{ _("hint: {hint}").format(hint=tr(c.hint)) }}</p>{% endif %}
{% for n in c.notes %}<p class="dim">{{ _("note: {note}").format(note=tr(n)) }}</p>{% endfor %}
{% endfor %}
{% if not r.failing and not r.error and not r.missing %}<p class="pass">{{ _("every check passed") }}</p>{% endif %}
</section>
{% endfor %}
<script>
window.addEventListener("error", function (e) { document.body.setAttribute("data-js-error", String(e.message)); });
(function () {
  var table = document.getElementById("class");
  var heads = table.tHead.rows[0].cells;
  function key(row, i, type) {
    var v = row.cells[i].getAttribute("data-sort");
    return type === "number" ? parseFloat(v) : v.toLowerCase();
  }
  function sortBy(i) {
    var th = heads[i], type = th.getAttribute("data-type");
    var dir = th.classList.contains("asc") ? -1 : 1;
    for (var j = 0; j < heads.length; j++) { heads[j].classList.remove("asc", "desc"); }
    th.classList.add(dir === 1 ? "asc" : "desc");
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, i, type), y = key(b, i, type);
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  for (var i = 0; i < heads.length; i++) {
    heads[i].addEventListener("click", sortBy.bind(null, i));
  }
  document.body.setAttribute("data-ready", "1");
})();
</script>
</body></html>
"""


def heat_svg(error_map) -> str | None:
    """The terminal's heat map (diagnose.heat_map: pooled to at most MAX_CELLS a side, shaded in
    len(SHADES) levels) as SVG: white for no error, dark red for the largest; None when all zero."""
    rows = heat_map(error_map)
    if not rows:
        return None
    top = len(SHADES) - 1
    cells = []
    for i, row in enumerate(rows):
        for j, ch in enumerate(row[::2]):  # each cell is two characters wide
            shade = round(255 * (1 - SHADES.index(ch) / top))
            cells.append(f'<rect x="{j * CELL}" y="{i * CELL}" width="{CELL}" height="{CELL}" '
                         f'fill="rgb(255,{shade},{shade})"/>')
    h, w = len(rows), len(rows[0]) // 2
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w * CELL}" height="{h * CELL}" '
            f'role="img">{"".join(cells)}</svg>')


def _check_view(d: dict) -> dict:
    """What the page shows of one failed check (from its plain-data form)."""
    k = Check.from_dict(d)
    svg = heat_svg(k.error_map) if k.error_map else None
    return {"name": k.name, "head": failed_head(k), "rel_error": k.rel_error, "worst": k.worst,
            "svg": svg and Markup(svg),  # numbers only: built here
            "grid": tr(msg("(HH, WW), summed over F and C") if k.name == "dw" else msg("(H, W), summed over N and C")),
            "mine": _("yours") if k.name == "out" else _("analytic"),
            "theirs": _("reference") if k.name == "out" else _("numerical")}


def _fmt(v) -> str:
    return f"{v:.6e}" if isinstance(v, (int, float)) else str(v)


def render(records: list[dict], lang: str = "en") -> str:
    """The page for the records of cnncheck.grade (grade_paths), in lang."""
    with use(lang):
        return _render(records, lang)


def _render(records: list[dict], lang: str) -> str:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    views = []
    for r in records:  # a submission that could not load shows its error once, not per case
        failing = [] if r["error"] else [
            {**c, "failed_checks": [_check_view(d) for d in c["checks"] if not d["passed"]]}
            for c in r["cases"] if not c["passed"] and r["layers"][c["layer"]]["defined"]]
        missing = [x for x, v in r["layers"].items() if v["counted"] and not v["defined"]]
        first = (r.get("findings") or [{}])[0].get("text") or r["hint"]
        views.append({**r, "failing": failing, "missing": [] if r["error"] else missing,
                      "findings": r.get("findings") or [], "main": tr(first)})
    return env.from_string(TEMPLATE).render(records=views, layers=all_layers(records),
                                            summary=class_summary(records), pts=points_text, fmt=_fmt,
                                            _=_, tr=tr, lang=lang.replace("_", "-"))
