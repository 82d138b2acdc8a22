// The overview page: the numbers of /api/overview drawn with uPlot (vendored), the diel grid on a
// canvas of its own. A chart's point opens the review of what it counts (/?label=…&day=…&hour=…);
// each chart exports its canvas as PNG and its numbers as CSV.
import uPlot from "/static/vendor/uplot/uPlot.esm.js";

const WIDTH = Math.min(1100, document.body.clientWidth - 80);
const HEIGHT = 260;
const COLORS = ["#1e88e5", "#e53935", "#43a047", "#fb8c00", "#8e24aa", "#00897b", "#6d4c41", "#3949ab"];
const select = document.getElementById("label");
let data = null;
const charts = {};

function review(params) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== null && v !== undefined));
  location.assign("/?" + query.toString());
}

function download(name, href) {
  const a = document.createElement("a");
  a.href = href;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
}

function csvOf(rows) {
  const cell = (v) => (v === null || v === undefined ? "" : /[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));
  return rows.map((row) => row.map(cell).join(",")).join("\n") + "\n";
}

// The section's export buttons; canvas() gives the canvas to save, rows() the CSV's rows.
function exports(id, canvas, rows) {
  const h2 = document.querySelector(`#${id} h2`);
  h2.querySelector(".export")?.remove();
  const box = document.createElement("span");
  box.className = "export";
  const png = document.createElement("button");
  png.textContent = "PNG";
  png.dataset.export = "png";
  png.onclick = () => download(`${id}.png`, canvas().toDataURL("image/png"));
  const csv = document.createElement("button");
  csv.textContent = "CSV";
  csv.dataset.export = "csv";
  csv.onclick = () => download(`${id}.csv`, URL.createObjectURL(new Blob([csvOf(rows())], {type: "text/csv"})));
  box.append(png, csv);
  h2.append(box);
}

function place(id) {
  const section = document.getElementById(id);
  section.querySelectorAll(".uplot, canvas.heatmap, .empty").forEach((node) => node.remove());
  charts[id]?.destroy?.();
  delete charts[id];
  return section;
}

function empty(section, text) {
  const p = document.createElement("p");
  p.className = "empty";
  p.textContent = text;
  section.append(p);
}

// A uPlot chart with bars for `bars` (and a line on a second axis for `line`), x as categories.
function plot(id, {x, xLabels, bars, line, onPick, xTime = false}) {
  const section = place(id);
  if (!x.length) return empty(section, "nothing recorded with a known time yet");
  const series = [{}];
  const values = [x];
  bars.forEach((b, n) => {
    series.push({label: b.label, stroke: COLORS[n % COLORS.length], fill: COLORS[n % COLORS.length] + "88",
                 paths: uPlot.paths.bars({size: [0.8 / bars.length, 60], align: 0}), points: {show: false}, scale: "y"});
    values.push(b.values);
  });
  if (line) {
    series.push({label: line.label, stroke: "#455a64", width: 2, scale: "y2", points: {show: true, size: 4}});
    values.push(line.values);
  }
  const axes = [
    xLabels ? {values: (u, splits) => splits.map((v) => xLabels[Math.round(v)] ?? ""), gap: 4} : {},
    {scale: "y", label: bars.length ? "windows" : ""},
  ];
  if (line) axes.push({scale: "y2", side: 1, label: line.axis, grid: {show: false}});
  const opts = {width: WIDTH, height: HEIGHT, series, axes,
                scales: {x: {time: xTime, range: (u, lo, hi) => [lo - 0.5, hi + 0.5]}, y: {range: (u, lo, hi) => [0, Math.max(1, hi)]}},
                cursor: {drag: {x: false, y: false}}};
  const chart = new uPlot(opts, values, section);
  chart.over.addEventListener("click", () => {
    const idx = chart.cursor.idx;
    if (idx !== null && idx !== undefined) onPick(idx);
  });
  charts[id] = chart;
  exports(id, () => chart.ctx.canvas, () => {
    const head = ["x", ...bars.map((b) => b.label), ...(line ? [line.label] : [])];
    return [head, ...x.map((v, i) => [xLabels ? xLabels[i] : v, ...bars.map((b) => b.values[i]),
                                        ...(line ? [line.values[i]] : [])])];
  });
}

function heatmap(label) {
  const section = place("diel");
  const days = data.days;
  if (!days.length) return empty(section, "nothing recorded with a known time yet");
  const cell = Math.max(4, Math.min(24, Math.floor((WIDTH - 120) / 24)));
  const rowH = Math.max(4, Math.min(18, Math.floor(400 / days.length)));
  const canvas = document.createElement("canvas");
  canvas.className = "heatmap";
  canvas.width = 100 + 24 * cell;
  canvas.height = 20 + days.length * rowH;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const counts = data.diel[label];
  const rate = (d, h) => (data.diel_effort[d][h] > 0 ? counts[d][h] / data.diel_effort[d][h] : null);
  let top = 0;
  days.forEach((_, d) => { for (let h = 0; h < 24; h++) top = Math.max(top, rate(d, h) ?? 0); });
  ctx.fillStyle = "#222";
  ctx.font = "10px sans-serif";
  for (let h = 0; h < 24; h += 3) ctx.fillText(String(h).padStart(2, "0"), 100 + h * cell, 12);
  days.forEach((day, d) => {
    if (rowH >= 9) ctx.fillText(day, 2, 20 + d * rowH + rowH - 2);
    for (let h = 0; h < 24; h++) {
      const r = rate(d, h);
      // Grey: nothing recorded that hour; white to blue: detections per recorded minute.
      ctx.fillStyle = r === null ? "#e0e0e0" : `rgba(30, 136, 229, ${top ? 0.08 + 0.92 * r / top : 0.08})`;
      ctx.fillRect(100 + h * cell, 20 + d * rowH, cell - 1, rowH - 1);
    }
  });
  canvas.addEventListener("click", (event) => {
    const box = canvas.getBoundingClientRect();
    const h = Math.floor((event.clientX - box.left - 100) / cell);
    const d = Math.floor((event.clientY - box.top - 20) / rowH);
    if (h >= 0 && h < 24 && d >= 0 && d < days.length) review({label, day: days[d], hour: h});
  });
  section.append(canvas);
  charts.diel = {destroy() {}};
  exports("diel", () => canvas, () => [["date", ...Array.from({length: 24}, (_, h) => `${h}h windows`),
                                         ...Array.from({length: 24}, (_, h) => `${h}h recorded minutes`)],
                                        ...days.map((day, d) => [day, ...counts[d], ...data.diel_effort[d]])]);
}

async function histogram(label) {
  const found = await (await fetch(`/api/overview/histogram?label=${encodeURIComponent(label)}`)).json();
  const section = place("histogram");
  if (!found.counts.length) return empty(section, "no windows");
  const mids = found.counts.map((_, i) => i);
  const names = found.counts.map((_, i) => ((found.edges[i] + found.edges[i + 1]) / 2).toFixed(3));
  const threshold = found.threshold;
  const chart = new uPlot({
    width: WIDTH, height: HEIGHT,
    series: [{}, {label: "windows", stroke: COLORS[0], fill: COLORS[0] + "88", paths: uPlot.paths.bars({size: [0.9, 80]}),
                  points: {show: false}, scale: "y"},
             {label: "validated share holding it", stroke: "#e53935", width: 2, scale: "share", points: {show: true, size: 6}}],
    axes: [{values: (u, splits) => splits.map((v) => names[Math.round(v)] ?? "")}, {scale: "y", label: "windows"},
           {scale: "share", side: 1, label: "validated share", grid: {show: false}}],
    scales: {x: {time: false, range: (u, lo, hi) => [lo - 0.5, hi + 0.5]}, share: {range: [0, 1]},
             y: {range: (u, lo, hi) => [0, Math.max(1, hi)]}},
    hooks: {draw: [(u) => {
      if (threshold === null) return;
      // The threshold's place among the bins, as a vertical line.
      const at = (threshold - found.edges[0]) / (found.edges[1] - found.edges[0]) - 0.5;
      const x = u.valToPos(at, "x", true);
      u.ctx.save();
      u.ctx.strokeStyle = "#000";
      u.ctx.setLineDash([6, 4]);
      u.ctx.beginPath();
      u.ctx.moveTo(x, u.bbox.top);
      u.ctx.lineTo(x, u.bbox.top + u.bbox.height);
      u.ctx.stroke();
      u.ctx.restore();
    }]},
  }, [mids, found.counts, found.precision], section);
  // A bin: the review of the windows whose score falls in it, tagged or not.
  chart.over.addEventListener("click", () => {
    const i = chart.cursor.idx;
    if (i !== null && i !== undefined) review({label, low: found.edges[i], high: found.edges[i + 1]});
  });
  charts.histogram = chart;
  exports("histogram", () => chart.ctx.canvas, () => [["bin low", "bin high", "windows", "validated", "validated share"],
    ...found.counts.map((n, i) => [found.edges[i], found.edges[i + 1], n, found.validated[i], found.precision[i]])]);
}

async function draw() {
  const label = select.value;
  plot("labels", {x: data.labels.map((_, i) => i), xLabels: data.labels,
                  bars: [{label: "windows tagged", values: data.labels.map((l) => data.totals[l].windows)}],
                  onPick: (i) => review({label: data.labels[i]})});
  plot("days", {x: data.days.map((_, i) => i), xLabels: data.days,
                bars: [{label: `${label} windows`, values: data.per_day[label]}],
                line: {label: "minutes recorded", axis: "minutes recorded", values: data.effort_per_day},
                onPick: (i) => review({label, day: data.days[i]})});
  const hours = Array.from({length: 24}, (_, h) => h);
  plot("hours", {x: data.days.length ? hours : [], xLabels: hours.map((h) => `${h}h`),
                 bars: [{label: `${label} windows`, values: data.per_hour_of_day[label]}],
                 line: {label: "minutes recorded", axis: "minutes recorded", values: data.effort_per_hour_of_day},
                 onPick: (h) => review({label, hour: h})});
  heatmap(label);
  const sites = data.sites.map((s) => s ?? "(unknown)");
  plot("sites", {x: sites.map((_, i) => i), xLabels: sites,
                 bars: [{label: `${label} windows per recorded minute`,
                         values: data.per_site[label].map((n, i) => (data.effort_per_site[i] ? n / data.effort_per_site[i] : 0))}],
                 onPick: (i) => review({label, site: data.sites[i]})});
  await histogram(label);
  document.body.dataset.state = "ready";
}

data = await (await fetch("/api/overview")).json();
for (const name of data.labels) select.append(new Option(name, name));
const wanted = new URLSearchParams(location.search).get("label");
if (wanted && data.labels.includes(wanted)) select.value = wanted;
select.addEventListener("change", () => { document.body.dataset.state = "loading"; draw(); });
await draw();
