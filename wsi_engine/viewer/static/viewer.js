// wsi-engine viewer: the slide as a Deep Zoom pyramid with the score map drawn over it.
// Everything comes from the local server that `wsi-engine view` started; nothing from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { slides: [], detail: null, classIndex: 0, overlay: null, bins: null, highlight: null };

const viewer = OpenSeadragon({
  element: $("view"),
  prefixUrl: "/static/openseadragon/images/",
  showNavigator: true,
  navigatorPosition: "BOTTOM_RIGHT",
  maxZoomPixelRatio: 4,
  visibilityRatio: 0.5,
  crossOriginPolicy: false,
});

async function getJson(url) {
  const response = await fetch(url);
  const payload = await response.json();
  if (!response.ok) throw new Error(payload.error || response.statusText);
  return payload;
}

function slideUrl(id) { return "/dzi/" + encodeURIComponent(id); }

// ---------------------------------------------------------------- formatting (plain words)
function formatValue(scale, className, value) {
  if (value === null || value === undefined) return "no score (outside the scored tissue)";
  if (scale.mode === "percentile") return `scores higher than ${value.toFixed(0)}% of this slide's patches for ${className}`;
  if (scale.quantity === "probs") return `probability of ${className}: ${value.toFixed(3)}`;
  const ratio = Math.pow(2, value);
  return `${ratio >= 1 ? ratio.toPrecision(3) : ratio.toPrecision(2)}× the weight of an average patch for ${className}`;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// ---------------------------------------------------------------- slide list
async function init() {
  const catalog = await getJson("/api/slides");
  state.slides = catalog.slides;
  $("run").textContent = `run ${catalog.run_id} · ${catalog.slides.length} slide(s)`;
  if (catalog.report) $("report-link").innerHTML = '<a href="/report/report.html">Open the static report</a>';
  for (const slide of catalog.slides) {
    const option = document.createElement("option");
    option.value = slide.id;
    option.textContent = slide.error ? `${slide.id} (cannot be shown)` : `${slide.id}${slide.predicted ? " — " + slide.predicted : ""}`;
    $("slide").appendChild(option);
  }
  const wanted = new URLSearchParams(location.search).get("slide");
  const first = catalog.slides.find((s) => s.id === wanted) || catalog.slides[0];
  if (first) { $("slide").value = first.id; await openSlide(first.id); }
}

async function openSlide(id) {
  const summary = state.slides.find((s) => s.id === id);
  if (summary && summary.error) { $("note").textContent = summary.error; return; }
  const detail = await getJson("/api/slides/" + encodeURIComponent(id));
  state.detail = detail;
  state.overlay = null;
  history.replaceState(null, "", "?slide=" + encodeURIComponent(id));
  $("note").textContent = detail.note || "";
  showFacts(detail);
  buildBins(detail);
  const select = $("class");
  select.innerHTML = "";
  detail.class_data.forEach((c, index) => {
    const option = document.createElement("option");
    option.value = index;
    option.textContent = c.name;
    select.appendChild(option);
  });
  select.value = detail.default_class;
  viewer.open({ tileSource: slideUrl(id) + "/slide.dzi", x: 0, y: 0, width: 1 });
  viewer.addOnceHandler("open", () => setClass(detail.default_class));
}

function showFacts(detail) {
  const parts = [];
  if (detail.predicted) {
    const index = detail.classes.indexOf(detail.predicted);
    const p = detail.probs && index >= 0 ? ` (probability ${detail.probs[index].toFixed(3)})` : "";
    parts.push(`<p>Predicted: <b>${escapeHtml(detail.predicted)}</b>${p}</p>`);
  }
  if (detail.true_label) {
    const right = detail.true_label === detail.predicted;
    parts.push(`<p>True label: <b>${escapeHtml(detail.true_label)}</b> — <span class="${right ? "right" : "wrong"}">${right ? "correct" : "incorrect"}</span></p>`);
  }
  if (detail.seen_in_training) {
    parts.push(`<p class="seen">Seen by the model: ${escapeHtml(detail.seen_in_training)}. Its probability is not a held-out estimate.</p>`);
  }
  $("facts").innerHTML = parts.join("");
}

// ---------------------------------------------------------------- overlay, colour bar, top patches
function setClass(index) {
  const detail = state.detail;
  state.classIndex = Number(index);
  if (state.overlay) viewer.world.removeItem(state.overlay);
  state.overlay = null;
  viewer.addTiledImage({
    tileSource: slideUrl(detail.id) + `/overlay-${state.classIndex}.dzi`,
    x: 0, y: 0, width: 1,
    opacity: Number($("opacity").value) / 100,
    success: (event) => { state.overlay = event.item; },
  });
  const data = detail.class_data[state.classIndex];
  drawColourBar(data.scale);
  $("explain").textContent = data.scale.explain;
  showTop(detail, data);
}

function drawColourBar(scale) {
  const canvas = $("bar");
  const context = canvas.getContext("2d");
  const width = canvas.width;
  scale.lut.forEach((colour, i) => {
    context.fillStyle = colour;
    context.fillRect(Math.floor((i * width) / scale.lut.length), 0, Math.ceil(width / scale.lut.length) + 1, canvas.height);
  });
  $("ticks").innerHTML = scale.ticks
    .map((t, i) => `<span style="left:${(((t - scale.vmin) / (scale.vmax - scale.vmin)) * $("bar").clientWidth).toFixed(1)}px">${escapeHtml(scale.tick_labels[i])}</span>`)
    .join("");
}

function showTop(detail, data) {
  const list = $("top");
  list.innerHTML = "";
  for (const index of data.top) {
    const [x, y] = detail.coords[index];
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.textContent = `${formatValue(data.scale, data.name, data.values[index])} (x ${x}, y ${y})`;
    button.addEventListener("click", () => goToPatch(index));
    item.appendChild(button);
    list.appendChild(item);
  }
}

function goToPatch(index) {
  const detail = state.detail;
  const [x, y] = detail.coords[index];
  const size = detail.patch_size_level0;
  const slide = viewer.world.getItemAt(0);
  viewer.viewport.fitBounds(slide.imageToViewportRectangle(x - size, y - size, 3 * size, 3 * size));
  const rect = slide.imageToViewportRectangle(x, y, size, size);
  if (state.highlight) viewer.removeOverlay(state.highlight);
  state.highlight = document.createElement("div");
  state.highlight.className = "highlight";
  viewer.addOverlay({ element: state.highlight, location: rect });
}

// ---------------------------------------------------------------- hover
function buildBins(detail) {
  const size = detail.patch_size_level0;
  const bins = new Map();
  detail.coords.forEach(([x, y], index) => {
    for (let bx = Math.floor(x / size); bx <= Math.floor((x + size - 1) / size); bx++) {
      for (let by = Math.floor(y / size); by <= Math.floor((y + size - 1) / size); by++) {
        const key = bx + "," + by;
        if (!bins.has(key)) bins.set(key, []);
        bins.get(key).push(index);
      }
    }
  });
  state.bins = bins;
}

function patchAt(x, y) {
  const detail = state.detail;
  const size = detail.patch_size_level0;
  const candidates = state.bins.get(Math.floor(x / size) + "," + Math.floor(y / size)) || [];
  return candidates.find((i) => {
    const [px, py] = detail.coords[i];
    return x >= px && x < px + size && y >= py && y < py + size;
  });
}

new OpenSeadragon.MouseTracker({
  element: viewer.container,
  moveHandler: (event) => {
    const slide = viewer.world.getItemAt(0);
    if (!slide || !state.detail) return;
    const point = slide.viewportToImageCoordinates(viewer.viewport.pointFromPixel(event.position));
    const index = patchAt(point.x, point.y);
    const data = state.detail.class_data[state.classIndex];
    const where = `x ${Math.round(point.x)}, y ${Math.round(point.y)} (level-0 px)`;
    $("hover").textContent = index === undefined
      ? `${where}: no patch here`
      : `Patch ${index} at ${where}: ${formatValue(data.scale, data.name, data.values[index])}`;
  },
});

// ---------------------------------------------------------------- controls
$("slide").addEventListener("change", (event) => openSlide(event.target.value));
$("class").addEventListener("change", (event) => setClass(event.target.value));
$("opacity").addEventListener("input", (event) => {
  $("opacity-value").textContent = event.target.value + "%";
  if (state.overlay) state.overlay.setOpacity(Number(event.target.value) / 100);
});

window.wsiViewer = { viewer, state, patchAt };
init().catch((error) => { $("note").textContent = String(error.message || error); });
