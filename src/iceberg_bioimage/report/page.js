"use strict";
// The plate report's behaviour. Everything it needs is in #report-data; nothing is fetched.
const D = JSON.parse(document.getElementById("report-data").textContent);
const state = {
  channels: D.channels.map((c) => ({ on: true, color: c.color })),
  heatmap: -1,
  well: null,
  sortBy: 0,
  descending: true,
};
const planes = new Map();

function decode(b64) {
  if (planes.has(b64)) return planes.get(b64);
  const promise = new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => {
      const c = document.createElement("canvas");
      c.width = img.width;
      c.height = img.height;
      const ctx = c.getContext("2d");
      ctx.drawImage(img, 0, 0);
      const rgba = ctx.getImageData(0, 0, img.width, img.height).data;
      const gray = new Uint8Array(img.width * img.height);
      for (let i = 0; i < gray.length; i++) gray[i] = rgba[i * 4];
      resolve(gray);
    };
    img.onerror = () => reject(new Error("undecodable thumbnail"));
    img.src = "data:image/png;base64," + b64;
  });
  planes.set(b64, promise);
  return promise;
}

function rgb(hex) {
  return [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
}

// Additive composite of the channels that are on, each in its colour; masked pixels
// (chunks that are not stored) stay transparent over the hatched background.
async function draw(canvas, item) {
  const w = item.width, h = item.height;
  canvas.width = w;
  canvas.height = h;
  const grays = await Promise.all(item.planes.map(decode));
  const mask = item.mask ? await decode(item.mask) : null;
  const out = new ImageData(w, h);
  const px = out.data;
  state.channels.forEach((ch, c) => {
    if (!ch.on) return;
    const [r, g, b] = rgb(ch.color);
    const gray = grays[c];
    for (let i = 0; i < w * h; i++) {
      const v = gray[i];
      px[i * 4] += r * v;
      px[i * 4 + 1] += g * v;
      px[i * 4 + 2] += b * v;
    }
  });
  for (let i = 0; i < w * h; i++) px[i * 4 + 3] = mask && mask[i] ? 0 : 255;
  canvas.getContext("2d").putImageData(out, 0, 0);
}

const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
const CATEGORIES = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
  "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

function scale(t) {
  const x = Math.min(Math.max(t, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
  const f = x - i;
  const c = VIRIDIS[i].map((v, k) => Math.round(v + f * (VIRIDIS[i + 1][k] - v)));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

function colouring(map) {
  const values = Object.values(map.values).filter((v) => v !== null && v !== undefined);
  if (map.kind === "categorical") {
    const cats = [...new Set(values)].sort();
    const colour = (v) => CATEGORIES[cats.indexOf(v) % CATEGORIES.length];
    return { colour, legend: cats.map((c) => [colour(c), String(c)]) };
  }
  const lo = Math.min(...values), hi = Math.max(...values);
  const colour = (v) => scale(hi > lo ? (v - lo) / (hi - lo) : 0.5);
  return { colour, legend: [[scale(0), fmt(lo)], [scale(1), fmt(hi)]] };
}

function fmt(v) {
  if (typeof v !== "number") return String(v);
  return Number.isInteger(v) ? String(v) : v.toPrecision(4);
}

function el(tag, attrs = {}, text = "") {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text) e.textContent = text;
  return e;
}

async function renderGrid() {
  const grid = document.getElementById("plate");
  grid.replaceChildren();
  grid.style.gridTemplateColumns = `2em repeat(${D.columns.length}, var(--well))`;
  grid.append(el("div"));
  D.columns.forEach((c) => grid.append(el("div", { class: "head" }, String(c))));
  const map = state.heatmap >= 0 ? D.heatmaps[state.heatmap] : null;
  const paint = map ? colouring(map) : null;
  const jobs = [];
  for (const row of D.rows) {
    grid.append(el("div", { class: "head" }, row));
    for (const column of D.columns) {
      const name = row + String(column).padStart(2, "0");
      const well = D.wells[name];
      const cell = el("div", { class: "well", "data-well": name });
      if (!well) {
        cell.classList.add("missing");
        cell.title = `${name}: no image`;
        if (map && map.values[name] !== undefined && map.values[name] !== null) {
          cell.dataset.value = String(map.values[name]);
          cell.title += ` — ${map.name}: ${fmt(map.values[name])}`;
        }
        grid.append(cell);
        continue;
      }
      const notes = [];
      if (well.missing_fields.length) notes.push(`fields missing: ${well.missing_fields.join(", ")}`);
      const absent = well.fields.reduce((n, f) => n + f.absent_chunks, 0);
      if (absent) notes.push(`${absent} chunks absent`);
      if (notes.length) cell.classList.add("partial");
      cell.title = [name, ...notes].join(" — ");
      if (map) {
        const v = map.values[name];
        cell.classList.add("heat");
        if (v === null || v === undefined) {
          cell.classList.add("novalue");
          cell.title += ` — ${map.name}: no value`;
        } else {
          cell.dataset.value = String(v);
          cell.style.background = paint.colour(v);
          cell.title += ` — ${map.name}: ${fmt(v)}`;
        }
      } else {
        const canvas = el("canvas");
        cell.append(canvas);
        jobs.push(draw(canvas, well.fields[0]));
      }
      cell.addEventListener("click", () => busy(showWell(name)));
      grid.append(cell);
    }
  }
  renderLegend(map, paint);
  await Promise.all(jobs);
}

function renderLegend(map, paint) {
  const legend = document.getElementById("legend");
  legend.replaceChildren();
  if (!map) return;
  legend.append(el("span", { class: "title" }, map.name));
  for (const [colour, label] of paint.legend) {
    const item = el("span", { class: "key" });
    const swatch = el("i");
    swatch.style.background = colour;
    item.append(swatch, document.createTextNode(label));
    legend.append(item);
  }
}

async function showWell(name) {
  state.well = name;
  const well = D.wells[name];
  const panel = document.getElementById("detail");
  panel.replaceChildren(el("h2", {}, `Well ${name}`));
  const fields = el("div", { class: "fields" });
  const jobs = [];
  for (const site of D.sites) {
    const field = well.fields.find((f) => f.site_id === site);
    const fig = el("figure", { class: "field", "data-site": site });
    if (!field) {
      fig.classList.add("missing");
      fig.title = `${name} field ${site}: no image`;
      fig.append(el("div", { class: "hole" }), el("figcaption", {}, `field ${site} — missing`));
    } else {
      const canvas = el("canvas");
      const caption = `field ${site} · level ${field.level}` +
        (field.absent_chunks ? ` · ${field.absent_chunks} chunks absent` : "");
      if (field.absent_chunks) fig.classList.add("partial");
      fig.title = field.image_id;
      fig.append(canvas, el("figcaption", {}, caption));
      jobs.push(draw(canvas, field));
    }
    fields.append(fig);
  }
  panel.append(fields);
  panel.append(el("h3", {}, `Cells (${well.cell_count} in the well, ${well.cells.length} shown)`));
  const gallery = el("div", { class: "gallery", id: "gallery" });
  panel.append(gallery);
  jobs.push(renderCells());
  await Promise.all(jobs);
  panel.dataset.well = name;
}

async function renderCells() {
  const gallery = document.getElementById("gallery");
  if (!gallery || !state.well) return;
  gallery.replaceChildren();
  const cells = [...D.wells[state.well].cells];
  const k = state.sortBy;
  if (D.features.length) {
    const key = (c) => (c.values[k] === null ? -Infinity : c.values[k]);
    cells.sort((a, b) => (state.descending ? key(b) - key(a) : key(a) - key(b)));
  }
  const jobs = [];
  for (const cell of cells) {
    const fig = el("figure", { class: "cell", "data-object-id": cell.object_id });
    const label = D.features.length ? `${D.features[k]} = ${fmt(cell.values[k])}` : "";
    if (cell.planes) {
      const canvas = el("canvas");
      fig.append(canvas);
      jobs.push(draw(canvas, cell));
    } else {
      fig.classList.add("missing");
      fig.append(el("div", { class: "hole", title: "no crop (no box)" }));
    }
    fig.append(el("figcaption", {}, cell.object_id), el("small", {}, label));
    gallery.append(fig);
  }
  await Promise.all(jobs);
}

function controls() {
  const box = document.getElementById("channels");
  D.channels.forEach((ch, c) => {
    const label = el("label", { class: "channel" });
    const on = el("input", { type: "checkbox", "data-channel": String(c) });
    on.checked = true;
    on.addEventListener("change", () => { state.channels[c].on = on.checked; busy(redraw()); });
    const colour = el("input", { type: "color", value: "#" + ch.color.toLowerCase(),
      "data-channel-color": String(c) });
    colour.addEventListener("input", () => {
      state.channels[c].color = colour.value.slice(1);
      busy(redraw());
    });
    label.append(on, colour, document.createTextNode(
      ` ${ch.name} (${fmt(ch.low)}–${fmt(ch.high)})`));
    box.append(label);
  });
  const heat = document.getElementById("heatmap");
  heat.append(el("option", { value: "-1" }, "Thumbnails"));
  const groups = { cells: "Cells", feature: "Feature (mean per well)", qc: "Quality control",
    platemap: "Platemap" };
  for (const [group, title] of Object.entries(groups)) {
    const og = el("optgroup", { label: title });
    D.heatmaps.forEach((m, i) => {
      if (m.group === group) og.append(el("option", { value: String(i) }, m.name));
    });
    if (og.children.length) heat.append(og);
  }
  heat.addEventListener("change", () => { state.heatmap = Number(heat.value); busy(redraw()); });
  const sort = document.getElementById("sort");
  D.features.forEach((f, i) => sort.append(el("option", { value: String(i) }, f)));
  sort.addEventListener("change", () => { state.sortBy = Number(sort.value); busy(renderCells()); });
  const order = document.getElementById("order");
  order.addEventListener("change", () => {
    state.descending = order.value === "desc";
    busy(renderCells());
  });
}

async function redraw() {
  await renderGrid();
  if (state.well) await showWell(state.well);
}

// data-ready on <body>: "0" while drawing, "1" when every canvas is drawn, "error" on failure.
let pending = 0;
function busy(promise) {
  pending += 1;
  document.body.dataset.ready = "0";
  return promise.then(
    () => { pending -= 1; if (!pending) document.body.dataset.ready = "1"; },
    (e) => { pending -= 1; document.body.dataset.ready = "error"; document.body.dataset.error = String(e); },
  );
}

controls();
busy(redraw());
