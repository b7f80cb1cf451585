"""One static HTML page per cohort: predictions table, then per slide its thumbnail, heatmaps and top patches.

The page is self-contained: inline CSS, one inline script (table sorting; the
page reads fine without it) and no network resources; images are relative
links to the PNGs written beside it in the output folder, so the page stays
small for large cohorts and the folder can be moved or zipped as a whole.
The only absolute links are the optional "zoom in" links to the local viewer
(``wsi-engine view``) on 127.0.0.1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from urllib.parse import quote

from wsi_engine.heatmap.files import atomic_output
from wsi_engine.heatmap.provenance import shown_classes

_CSS = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; font-size: 16px; line-height: 1.45;
       color: #1d1d1f; background: #fafafa; margin: 0 auto; padding: 24px 32px; max-width: 1500px; }
h1 { font-size: 28px; margin: 0 0 4px; }
h2 { font-size: 22px; margin: 0 0 8px; }
p.meta { color: #555; margin: 0 0 18px; }
table { border-collapse: collapse; background: white; margin-bottom: 28px; }
th, td { border: 1px solid #ccc; padding: 6px 12px; text-align: left; }
th { background: #e8ecf2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.wrong td { background: #fde8e8; }
tr.failed td { color: #9b1c1c; }
.best { font-weight: bold; }
section.slide { background: white; border: 1px solid #ddd; border-radius: 8px; padding: 16px 20px; margin: 0 0 28px; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
figure { margin: 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; background: white; }
figure.thumb img { width: 320px; max-width: 100%; }
figure.heatmap img { width: 600px; max-width: 100%; }
figure.wide { flex-basis: 100%; }
figcaption { font-size: 14px; color: #444; margin-top: 4px; }
.note { color: #9b1c1c; }
.seen { background: #fff4cc; }
.right { color: #1b6e20; font-weight: bold; }
.wrongword { color: #9b1c1c; font-weight: bold; }
.explain { background: white; border: 1px solid #ccc; border-radius: 6px; padding: 8px 14px; margin: 0 0 18px; }
th[data-sort] { cursor: pointer; }
th[data-sort]::after { content: " \\2195"; color: #888; }
"""
_TRUTH_NOTE = " Rows in red: the prediction differs from the true label."
_SEEN_NOTE = (
    " Slides marked “seen in training” were training or validation slides of a fold model: their "
    "probabilities average models of which some learned from them, so they are not held-out results."
)
VIEWER_URL = "http://127.0.0.1:8765/"
"""Default address of ``wsi-engine view`` (its default --port)."""
_SORT_SCRIPT = """
document.querySelectorAll("th[data-sort]").forEach((th, column) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0], numeric = th.dataset.sort === "num";
  const key = (row) => { const t = row.cells[column].dataset.value ?? row.cells[column].textContent.trim();
                         return numeric ? (parseFloat(t) || -1) : t.toLowerCase(); };
  const up = th.dataset.order !== "up"; th.dataset.order = up ? "up" : "down";
  [...body.rows].sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (up ? 1 : -1))
    .forEach((row) => body.appendChild(row));
}));
"""


@dataclass
class SlideEntry:
    """What the report shows of one slide; image paths are relative to the report."""

    slide_id: str
    predicted_class: str | None = None
    slide_probs: list[float] | None = None
    true_label: str | None = None
    thumbnail: str | None = None
    heatmaps: list[tuple[str, str]] = field(default_factory=list)
    galleries: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seen_in_training: str | None = None
    explanations: list[str] = field(default_factory=list)

    @property
    def correct(self) -> bool | None:
        """Whether the prediction matches the true label; ``None`` when either is unknown."""
        if self.true_label is None or self.predicted_class is None:
            return None
        return self.predicted_class == self.true_label


def write_report(
    out_path: Path,
    entries: list[SlideEntry],
    *,
    run_id: str,
    class_names: list[str],
    scale_note: str,
) -> None:
    """Write the cohort page to ``out_path`` (``class_names`` orders the probability columns)."""
    with_truth = any(e.true_label is not None for e in entries)
    any_seen = any(e.seen_in_training for e in entries)
    explanations = list(dict.fromkeys(text for e in entries for text in e.explanations))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>wsi-engine heatmaps — run {escape(run_id)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Heatmaps — run {escape(run_id)}</h1>",
        f'<p class="meta">{len(entries)} slide(s). Click a column heading to sort the table.'
        f"{_TRUTH_NOTE if with_truth else ''}{_SEEN_NOTE if any_seen else ''}</p>",
        '<div class="explain"><b>How to read the colours.</b> '
        + " ".join(escape(t) for t in [scale_note, *explanations])
        + "</div>",
        f'<p class="meta">Click an image to open it at full size. To zoom into a slide with its heatmap, run '
        f"<code>wsi-engine view {escape(str(out_path.parent.resolve()))}</code> and follow a slide's "
        "“zoom in” link; the page works without it.</p>",
        _table(entries, class_names, with_truth),
        *(_section(entry) for entry in entries),
        f"<script>{_SORT_SCRIPT}</script>",
        "</body></html>",
    ]
    with atomic_output(out_path) as tmp:
        tmp.write_text("\n".join(parts) + "\n", encoding="utf-8")


def _table(entries: list[SlideEntry], class_names: list[str], with_truth: bool) -> str:
    shown = shown_classes(class_names)
    any_seen = any(e.seen_in_training for e in entries)
    head = [
        ("Slide", "text"),
        *([("True label", "text")] if with_truth else []),
        ("Predicted", "text"),
        *([("Correct", "text")] if with_truth else []),
        *((f"P({class_names[i]})", "num") for i in shown),
        *([("Seen in training", "text")] if any_seen else []),
        ("Zoom", ""),
    ]
    rows = ["<table><thead><tr>"]
    rows.extend(
        f'<th data-sort="{kind}">{escape(h)}</th>' if kind else f"<th>{escape(h)}</th>"
        for h, kind in head
    )
    rows.append("</tr></thead><tbody>")
    for entry in entries:
        css = "failed" if entry.error else "wrong" if entry.correct is False else ""
        cells = [f'<td><a href="#{_anchor(entry.slide_id)}">{escape(entry.slide_id)}</a></td>']
        if with_truth:
            cells.append(f"<td>{escape(entry.true_label or '—')}</td>")
        cells.append(
            f"<td>{escape(entry.predicted_class or ('failed' if entry.error else '—'))}</td>"
        )
        if with_truth:
            cells.append(f"<td>{_verdict(entry)}</td>")
        probs = entry.slide_probs or []
        best = max(range(len(probs)), key=probs.__getitem__) if probs else -1
        for index in shown:
            text = f"{probs[index]:.3f}" if index < len(probs) else "—"
            cells.append(f'<td class="num{" best" if index == best else ""}">{text}</td>')
        if any_seen:
            seen = entry.seen_in_training
            cells.append(f'<td class="seen">{escape(seen)}</td>' if seen else "<td>no</td>")
        cells.append(f"<td>{_viewer_link(entry.slide_id)}</td>")
        rows.append(f'<tr class="{css}">{"".join(cells)}</tr>')
    rows.append("</tbody></table>")
    return "".join(rows)


def _verdict(entry: SlideEntry) -> str:
    correct = entry.correct
    if correct is None:
        return "—"
    return (
        '<span class="right">correct</span>'
        if correct
        else '<span class="wrongword">incorrect</span>'
    )


def _viewer_link(slide_id: str) -> str:
    return f'<a href="{VIEWER_URL}?slide={quote(slide_id, safe="")}">zoom in</a>'


def _section(entry: SlideEntry) -> str:
    parts = [
        f'<section class="slide" id="{_anchor(entry.slide_id)}"><h2>{escape(entry.slide_id)}</h2>'
    ]
    facts = []
    if entry.predicted_class:
        facts.append(f"predicted <b>{escape(entry.predicted_class)}</b>")
    if entry.true_label:
        facts.append(f"true label <b>{escape(entry.true_label)}</b> ({_verdict(entry)})")
    facts.append(_viewer_link(entry.slide_id))
    parts.append(f"<p>{', '.join(facts)}</p>")
    if entry.seen_in_training:
        parts.append(
            f'<p class="seen">Seen in training: {escape(entry.seen_in_training)}. '
            "Its probability is not a held-out result.</p>"
        )
    for note in ([entry.error] if entry.error else []) + entry.notes:
        parts.append(f'<p class="note">{escape(note)}</p>')
    parts.append('<div class="figures">')
    if entry.thumbnail:
        parts.append(_figure(entry.thumbnail, "slide thumbnail", "thumb"))
    parts.extend(_figure(path, caption, "heatmap") for caption, path in entry.heatmaps)
    parts.extend(_figure(path, caption, "wide") for caption, path in entry.galleries)
    parts.append("</div></section>")
    return "".join(parts)


def _figure(path: str, caption: str, css: str = "") -> str:
    src = "/".join(quote(part) for part in Path(path).parts)
    return (
        f'<figure class="{css}"><a href="{src}"><img src="{src}" alt="{escape(caption)}" loading="lazy"></a>'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _anchor(slide_id: str) -> str:
    return "slide-" + quote(slide_id, safe="")
