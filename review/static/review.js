// The review page: one recording at a time, verdicts by key. State changes are POSTs that carry
// the page's CSRF token in a header (see review/guard.py).
import WaveSurfer from "/static/vendor/wavesurfer/wavesurfer.esm.js";
import RegionsPlugin from "/static/vendor/wavesurfer/regions.esm.js";
import SpectrogramPlugin from "/static/vendor/wavesurfer/spectrogram.esm.js";

const csrf = document.body.dataset.csrf;
const taxonomy = JSON.parse(document.getElementById("taxonomy-labels").textContent);
const esc = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const colour = (label) => `hsla(${(taxonomy.indexOf(label) * 137) % 360}, 70%, 55%, 0.3)`;
let items = [], progress = null, index = 0, wavesurfer = null;

async function post(path, body) {
  const response = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json",
    "X-Soundtag-CSRF": csrf}, body: JSON.stringify(body || {})});
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

function showProgress() {
  document.getElementById("progress").textContent =
    `${progress.reviewed} reviewed / ${progress.remaining} remaining`;
  document.getElementById("per-label").innerHTML = "<h2>per label</h2>" + Object.entries(progress.per_label)
    .map(([label, c]) => `<div><span class="swatch" style="background:${colour(label)}"></span>${esc(label)}: ` +
      `${c.reviewed} / ${c.total}</div>`).join("");
}

function showVerdict(item) {
  const given = progress.verdicts[item.id];
  const text = given ? `${given.verdict}${given.verdict === "correct" ? " → " + esc(given.label) : ""}` : "no verdict yet";
  document.getElementById("decision").innerHTML =
    `model's decision: <strong>${esc(item.decision ?? "none")}</strong><span class="verdict">${text}</span>`;
}

async function show(i) {
  index = Math.max(0, Math.min(i, items.length - 1));
  const item = items[index];
  document.body.dataset.state = "loading";
  document.body.dataset.file = item.id;
  document.getElementById("name").textContent = item.name;
  document.getElementById("position").textContent = `recording ${index + 1} of ${items.length}`;
  document.querySelector("#labels tbody").innerHTML = item.labels.map((l) =>
    `<tr><td><span class="swatch" style="background:${colour(l.label)}"></span>${esc(l.label)}</td>` +
    `<td>${l.score.toFixed(3)}</td><td>${l.similarity.toFixed(3)}</td></tr>`).join("");
  showVerdict(item);
  const windows = await (await fetch(`/api/items/${item.id}/windows`)).json();
  if (wavesurfer) wavesurfer.destroy();
  const regions = RegionsPlugin.create();
  wavesurfer = WaveSurfer.create({container: "#waveform", height: 110, waveColor: "#607d8b",
    progressColor: "#263238", url: `/audio/${item.id}`, sampleRate: 22050,
    plugins: [regions, SpectrogramPlugin.create({container: "#spectrogram", labels: true, height: 160})]});
  wavesurfer.on("decode", () => {
    for (const w of windows) {
      regions.addRegion({start: w.start, end: w.end, color: colour(w.label), drag: false, resize: false,
        content: `${w.label} ${w.score.toFixed(2)}`});
    }
    document.body.dataset.regions = windows.length;
    document.body.dataset.state = "ready";
  });
  wavesurfer.on("error", (e) => { document.body.dataset.state = "error"; console.error(e); });
}

function nextUnreviewed() {
  for (let i = index + 1; i < items.length; i++) if (!progress.verdicts[items[i].id]) return i;
  return Math.min(index + 1, items.length - 1);
}

// --order learn: the head the queue is ordered by, and with --learn its next version, trained in
// the background; when a new version arrives the rest of the queue is taken in its order.
let learningHead = null;

function showLearning(status) {
  const box = document.getElementById("learning");
  if (!status || !box) return;
  const numbers = Object.entries(status.metrics).map(([label, m]) => `<div>${esc(label)}: AP ` +
    `${m.head.average_precision?.toFixed(2) ?? "–"} (zero-shot ${m.zero_shot.average_precision?.toFixed(2) ?? "–"})` +
    `</div>`).join("");
  box.innerHTML = `<h2>head</h2><div id="head-version">${esc(status.head ?? "none yet")}</div>` +
    (status.training ? "<div>training…</div>" : "") + (status.error ? `<div>${esc(status.error)}</div>` : "") +
    numbers;
  box.dataset.head = status.head ?? "";
}

async function followLearning(status) {
  showLearning(status);
  if (!status) return;
  if (status.head !== learningHead) {
    learningHead = status.head;
    const loaded = await (await fetch("/api/items")).json();
    items = loaded.items;
    progress = loaded.progress;
    const first = items.findIndex((item) => !progress.verdicts[item.id]);
    await show(first >= 0 ? first : 0);
  }
  if (status.training) setTimeout(async () => followLearning(await (await fetch("/api/learning")).json()), 1000);
}

async function judge(verdict, label) {
  const item = items[index];
  const answer = await post("/api/verdicts", {file_id: item.id, verdict, label});
  progress = answer.progress;
  showProgress();
  await show(nextUnreviewed());
  await followLearning(answer.learning);
}

async function undo() {
  const answer = await post("/api/undo");
  progress = answer.progress;
  showProgress();
  const back = items.findIndex((item) => item.id === answer.file_id);
  await show(back >= 0 ? back : index);
}

const help = document.getElementById("help");
document.getElementById("help-button").onclick = () => { help.hidden = !help.hidden; };

document.addEventListener("keydown", async (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || !items.length) return;
  const key = event.key;
  if (key === " ") { event.preventDefault(); wavesurfer?.playPause(); }
  else if (key === "a") await judge("accept");
  else if (key === "x") await judge("reject");
  else if (/^[1-9]$/.test(key) && Number(key) <= taxonomy.length) await judge("correct", taxonomy[Number(key) - 1]);
  else if (key === "n") await show(index + 1);
  else if (key === "p") await show(index - 1);
  else if (key === "u") await undo();
  else if (key === "?") help.hidden = !help.hidden;
  else if (key === "Escape") help.hidden = true;
});

const loaded = await (await fetch("/api/items")).json();
items = loaded.items;
progress = loaded.progress;
learningHead = loaded.learning?.head ?? null;
showLearning(loaded.learning);
showProgress();
if (items.length) {
  const first = items.findIndex((item) => !progress.verdicts[item.id]);
  await show(first >= 0 ? first : 0);
} else {
  document.getElementById("name").textContent = "nothing to review";
  document.body.dataset.state = "empty";
}
