// The review page: one item at a time (a recording, a window or an event), verdicts by key.
// Each item's audio is the segment and its context, cut by the server at the recording's own
// rate; the next item's is fetched while the current one plays. State changes are POSTs that
// carry the page's CSRF token in a header (see review/guard.py) and name the item and the
// version of it they judge, so a second press of a key cannot judge an item twice or skip one.
import WaveSurfer from "/static/vendor/wavesurfer/wavesurfer.esm.js";
import RegionsPlugin from "/static/vendor/wavesurfer/regions.esm.js";
import SpectrogramPlugin from "/static/vendor/wavesurfer/spectrogram.esm.js";
import TimelinePlugin from "/static/vendor/wavesurfer/timeline.esm.js";

const csrf = document.body.dataset.csrf;
const taxonomy = JSON.parse(document.getElementById("taxonomy-labels").textContent);
const colour = (label) => `hsla(${(Math.max(taxonomy.indexOf(label), 0) * 137) % 360}, 70%, 55%, 0.3)`;
const ZOOM_STEP = 1.5, MAX_ZOOM = 64;
// The list is asked for a page at a time (issue 27: 20,000 items' JSON took seconds): the page
// holding the current item, and the next one once the reviewer comes within AHEAD of its end.
const PAGE = 50, AHEAD = 10;
// Keys pressed within this many ms of a verdict's press are dropped: faster than a person could
// hear or see the item after it, so the second press of a double press.
const DOUBLE_PRESS_MS = 150;
// The listing the page walks (its number on the server: every page is cut from one order), how
// many items it has, and those of its pages that came, by place.
let listing = null, total = 0;
const items = new Map();  // place → item
const pages = new Map();  // page number → Promise: each asked for once
let progress = null, index = 0, unit = "file";
// A team's page lists only the items handed to this person; when they are judged it asks for
// the next ones instead of going round to the first.
let handed = false;
let busy = false;  // a verdict, an undo or the item after them is on its way: keys wait
let showing = 0;  // the latest show(): an earlier one still loading gives way
let clipStart = 0, zoom = 1;
const clips = new Map();  // item place → Promise of {blob, start, rate}: the current item and the next

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function swatch(label) {
  const node = element("span", undefined, "swatch");
  node.style.background = colour(label);
  return node;
}

function clock(seconds) {
  const s = Math.max(seconds, 0), h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
  const rest = (s % 60).toFixed(s < 60 && s % 1 ? 1 : 0).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

function problem(text) {
  const node = document.getElementById("problem");
  node.textContent = text || "";
  node.hidden = !text;
}

const regions = RegionsPlugin.create();
const wavesurfer = WaveSurfer.create({
  container: "#waveform", height: 110, waveColor: "#607d8b", progressColor: "#263238",
  plugins: [regions, TimelinePlugin.create({formatTimeCallback: (seconds) => clock(seconds + clipStart)})]});
wavesurfer.on("error", (error) => problem(`audio: ${error?.message || error}`));

// A new spectrogram per item: the plugin keeps the first item's frequencies (redrawn on a new
// load as long as the zoom is unchanged) and its first frequency range (its axis labels).
let spectrogram = null;

function drawSpectrogram(id) {
  if (spectrogram) wavesurfer.unregisterPlugin(spectrogram);
  delete document.body.dataset.spectrogram;
  spectrogram = wavesurfer.registerPlugin(SpectrogramPlugin.create({container: "#spectrogram", labels: true,
    height: 200, scale: "linear", fftSamples: 512}));
  spectrogram.once("ready", () => { document.body.dataset.spectrogram = id; });
}

async function post(path, body) {
  const response = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json",
    "X-Soundtag-CSRF": csrf}, body: JSON.stringify(body || {})});
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(`${path}: ${response.status} ${answer.error || ""}`),
    {status: response.status, answer});
  return answer;
}

// Fetched and decoded ahead: showing a prefetched item only draws it.
function clipOf(i) {
  if (!clips.has(i)) {
    clips.set(i, fetch(`/api/items/${items.get(i).id}/audio`).then(async (response) => {
      if (!response.ok) throw new Error(await response.text());
      const blob = await response.blob();
      const rate = Number(response.headers.get("X-Soundtag-Rate"));
      // Decoded at the clip's own rate (the recording's, at most 96 kHz): the spectrogram reaches
      // its Nyquist frequency instead of the 22,050 Hz a fixed decoding rate would show.
      const decoded = await new OfflineAudioContext(1, 1, rate).decodeAudioData(await blob.arrayBuffer());
      return {blob, rate, start: Number(response.headers.get("X-Soundtag-Clip-Start")),
        samples: decoded.getChannelData(0), duration: decoded.duration};
    }));
    clips.get(i).catch(() => clips.delete(i));  // a failed fetch is tried again when shown
  }
  return clips.get(i);
}

function showProgress() {
  document.getElementById("progress").textContent =
    `${progress.reviewed} reviewed / ${progress.remaining} remaining`;
  const list = document.getElementById("per-label");
  list.replaceChildren(element("h2", `per label (${unitName(2)})`));
  for (const [label, counts] of Object.entries(progress.per_label)) {
    const row = element("div");
    row.append(swatch(label), `${label || "no decision"}: ${counts.reviewed} / ${counts.total}`);
    list.append(row);
  }
}

// --order adjudicate: who said what, so that the admin's verdict can settle it.
function showVotes(item) {
  const node = document.getElementById("votes");
  node.hidden = !item.votes;
  if (!item.votes) return;
  node.replaceChildren("votes: ", ...Object.entries(item.votes).sort().map(([person, label], i) => {
    const vote = element("span", `${i ? " · " : ""}${person} → ${label ?? "none (reject)"}`, "vote");
    vote.dataset.reviewer = person;
    return vote;
  }));
}

// An admin's page: per person, verdicts today and in all, items held now and agreement with the
// consensus; per label, items judged, waiting for an adjudicator, and left (GET /api/team).
async function showTeam() {
  const section = document.getElementById("team");
  if (!section) return;
  const response = await fetch("/api/team");
  if (!response.ok) { problem(`team: ${response.status} ${await response.text()}`); return; }
  const team = await response.json();
  const row = (cells, key, value) => {
    const tr = element("tr");
    tr.dataset[key] = value;
    for (const [name, text] of cells) tr.append(element("td", String(text), name));
    return tr;
  };
  document.querySelector("#team-people tbody").replaceChildren(...team.people.map((p) => row([
    ["name", p.name], ["role", p.role ?? "(not in the team)"], ["today", p.today], ["total", p.total],
    ["held", p.held], ["agreement", p.agreement.value === null ? "—"
      : `${Math.round(p.agreement.value * 100)}% of ${p.agreement.items}`]], "person", p.name)));
  document.querySelector("#team-labels tbody").replaceChildren(...team.labels.map((l) => row([
    ["label", l.label || "no decision"], ["judged", l.judged], ["adjudicate", l.to_adjudicate],
    ["remaining", l.remaining]], "label", l.label)));
  section.dataset.loaded = Number(section.dataset.loaded ?? 0) + 1;
}

function decisionText(item) {
  return item.decision ?? "no decision (abstained)";
}

function showVerdict(item) {
  const given = item.given;
  const node = document.getElementById("decision");
  node.replaceChildren("model's decision: ", element("strong", decisionText(item), item.decision ? "" : "abstained"),
    element("span", given ? given.verdict + (given.verdict === "correct" ? " → " + given.label : "") : "no verdict yet",
      "verdict"));
}

function where(item) {
  if (item.start === null) return `recording ${index + 1} of ${total}`;
  return `${unit} ${index + 1} of ${total}: ${clock(item.start)}–${clock(item.end)}` +
    (item.duration ? ` of ${clock(item.duration)}` : "");
}

function showSpan() {
  const span = (wavesurfer.getDuration() || 1) / zoom;
  document.body.dataset.span = span.toFixed(3);
  document.getElementById("span").textContent = `${span.toFixed(1)} s`;
}

function zoomBy(factor) {
  if (document.body.dataset.state !== "ready") return;
  zoom = Math.min(Math.max(zoom * factor, 1), MAX_ZOOM);
  const width = document.getElementById("waveform").clientWidth;
  wavesurfer.zoom((width / (wavesurfer.getDuration() || 1)) * zoom);
  showSpan();
}

async function show(i) {
  const ticket = ++showing;
  index = Math.max(0, Math.min(i, total - 1));
  document.body.dataset.state = "loading";
  let item;
  try {
    item = await itemAt(index);
  } catch (error) {
    if (ticket === showing) { problem(error.message); document.body.dataset.state = "error"; }
    return;
  }
  if (ticket !== showing) return;
  document.body.dataset.item = item.id;
  document.body.dataset.file = item.file;
  document.getElementById("name").textContent = item.name;
  document.getElementById("position").textContent = where(item);
  document.querySelector("#labels tbody").replaceChildren(...item.labels.map((l) => {
    const row = element("tr"), name = element("td");
    name.append(swatch(l.label), l.label);
    row.append(name, element("td", l.score.toFixed(3)), element("td", l.similarity.toFixed(3)));
    return row;
  }));
  showVerdict(item);
  showVotes(item);
  problem("");
  let clip;
  try {
    clip = await clipOf(index);
  } catch (error) {
    if (ticket === showing) { problem(`audio: ${error.message}`); document.body.dataset.state = "error"; }
    return;
  }
  if (ticket !== showing) return;
  clipStart = clip.start;
  if (zoom !== 1) wavesurfer.setOptions({minPxPerSec: 0});  // back to fitting the item, as drawn first
  zoom = 1;
  try {
    await wavesurfer.loadBlob(clip.blob, [clip.samples], clip.duration);
  } catch (error) {
    if (ticket === showing) { problem(`audio: ${error.message}`); document.body.dataset.state = "error"; }
    return;
  }
  if (ticket !== showing) return;
  regions.clearRegions();
  const start = item.start === null ? 0 : item.start - clipStart;
  const end = item.end === null ? wavesurfer.getDuration() : item.end - clipStart;
  regions.addRegion({start, end, color: colour(item.decision), drag: false, resize: false,
    content: decisionText(item)});
  showSpan();
  drawSpectrogram(item.id);
  const rate = Math.round(wavesurfer.getDecodedData().sampleRate);
  document.body.dataset.rate = rate;
  document.getElementById("frequency-range").textContent = `0–${(rate / 2000).toFixed(1)} kHz`;
  document.body.dataset.state = "ready";
  delete document.body.dataset.prefetched;
  if (index + AHEAD < total) pageOf(index + AHEAD).catch(() => {});
  let next;
  try {
    next = (await nextUnreviewed()) ?? index;
  } catch {
    return;  // asked again at the verdict
  }
  if (ticket !== showing) return;
  for (const kept of clips.keys()) if (kept !== index && kept !== next) clips.delete(kept);
  if (next !== index) {
    clipOf(next).then(() => {
      if (ticket === showing) document.body.dataset.prefetched = items.get(next).id;
    }, () => {});
  }
}

// Asks for a page of the listing. A new listing (none held yet, or the server no longer keeps
// this one) replaces everything the page held of the old one: places belong to one listing.
async function ask(params) {
  const query = new URLSearchParams(location.search);  // an overview chart's filters, if any
  for (const [key, value] of Object.entries({limit: PAGE, ...params})) query.set(key, value);
  const asked = listing;
  if (asked !== null) query.set("listing", asked);
  const response = await fetch("/api/items?" + query);
  if (!response.ok) throw new Error(`/api/items: ${response.status} ${await response.text()}`);
  const answer = await response.json();
  if (listing !== asked) return ask(params);  // the page took a new listing meanwhile: ask that one
  if (answer.listing !== listing) {
    listing = answer.listing;
    items.clear();
    pages.clear();
    clips.clear();
    progress = answer.progress;  // a page's own answer may be older than the verdict answers since
  }
  total = answer.total;
  unit = answer.unit;
  handed = answer.handed;
  // The items the page holds already keep their verdicts as the page last heard them.
  answer.items.forEach((item, k) => { if (!items.has(answer.offset + k)) items.set(answer.offset + k, item); });
  if (!pages.has(answer.offset / PAGE)) pages.set(answer.offset / PAGE, Promise.resolve());
  return answer;
}

// A new listing of the order as it is now: the page holding the first item without a verdict,
// or with `params` another place to find (an item).
function reload(params = {after: -1}) {
  listing = null;
  return ask(params);
}

function pageOf(i) {
  const number = Math.floor(i / PAGE);
  if (!pages.has(number)) {
    const asked = ask({offset: number * PAGE});
    pages.set(number, asked);
    asked.catch(() => pages.delete(number));  // asked again when needed
  }
  return pages.get(number);
}

async function itemAt(i) {
  if (!items.has(i)) await pageOf(i);
  return items.get(i);
}

// The place of the first item after place `after` (-1: from the first) without a verdict, going
// round to the start (a team's page: up to the end of what it was handed); null when the others
// all have one. The pages held answer; past them the server looks, over the whole listing.
async function nextUnreviewed(after = index) {
  for (let step = 1; step <= total; step++) {
    let i = after + step;
    if (i >= total) {
      if (handed) return null;
      i -= total;
    }
    if (i === after) return null;
    if (!items.has(i)) return (await ask({after})).position;
    if (!items.get(i).given) return i;
  }
  return null;
}

// Where item `id` is in the listing; null when it is not in it.
async function placeOf(id) {
  for (const [i, item] of items) if (item.id === id) return i;
  return (await ask({item: id})).position;
}

function unitName(n) {
  return unit === "file" ? (n === 1 ? "recording" : "recordings") : (n === 1 ? unit : unit + "s");
}

// Every item has a verdict: said instead of an item; n, p and u still go back to one.
function finished() {
  showing++;
  wavesurfer.pause();
  document.getElementById("done").textContent = handed
    ? `nothing left to hand out to you — u undoes your last verdict`
    : `all ${total} ${unitName(total)} reviewed — u undoes the last verdict, p goes back`;
  document.body.dataset.state = "done";
}

// A new listing's first item without a verdict, or the done page.
function showFrom(answer) {
  return answer.position === null ? finished() : show(answer.position);
}

function update(item, answer) {
  item.given = answer.given;
  item.version = answer.version;
  progress = answer.progress || progress;
  showProgress();
}

// The verdict is saved while the next item is drawn; keys wait for both. A stale verdict (409)
// means the item was judged already, so the page stays on the next one; any other failure goes
// back to the item.
async function judge(verdict, label) {
  const at = index, item = items.get(at);
  const saved = post("/api/verdicts", {item: item.id, version: item.version, verdict, label});
  let next;
  try {
    next = await nextUnreviewed();
  } catch (error) {
    next = at;  // the list could not be asked: the page stays on the item once the verdict is in
    problem(error.message);
  }
  if (next === null && handed) return handOutMore(saved, item);
  const shown = next === null ? finished() : show(next);
  let answer;
  try {
    answer = await saved;
    update(item, answer);
  } catch (error) {
    if (error.status === 409) update(item, error.answer);
    await shown;
    if (error.status !== 409) { await show(at); problem(error.message); }
    return;
  }
  await shown;
  await followLearning(answer.learning);
}

// The last item handed to this person is judged: once the verdict is in, ask for the next ones.
async function handOutMore(saved, item) {
  try {
    update(item, await saved);
  } catch (error) {
    if (error.status !== 409) { problem(error.message); return; }
  }
  const answer = await reload();
  showProgress();
  return showFrom(answer);
}

// --order learn: the head the queue is ordered by, and with --learn its next version, trained in
// the background; when a new version arrives the rest of the queue is taken in its order.
let learningHead = null;

function showLearning(status) {
  const box = document.getElementById("learning");
  if (!status || !box) return;
  box.replaceChildren(element("h2", "head"), element("div", status.head ?? "none yet"));
  box.lastChild.id = "head-version";
  if (status.training) box.append(element("div", "training…"));
  if (status.error) box.append(element("div", status.error));
  for (const [label, m] of Object.entries(status.metrics)) {
    box.append(element("div", `${label}: AP ${m.head.average_precision?.toFixed(2) ?? "–"} ` +
      `(zero-shot ${m.zero_shot.average_precision?.toFixed(2) ?? "–"})`));
  }
  box.dataset.head = status.head ?? "";
}

async function followLearning(status) {
  showLearning(status);
  if (!status) return;
  if (status.head !== learningHead) {
    learningHead = status.head;
    const answer = await reload();
    showProgress();
    await showFrom(answer);
  }
  if (status.training) setTimeout(async () => followLearning(await (await fetch("/api/learning")).json()), 1000);
}

async function undo() {
  let answer;
  try {
    answer = await post("/api/undo");
  } catch (error) {
    problem(error.message);
    return;
  }
  if (answer.item === null) return;
  if (handed) {  // the item is handed back to this person, first of their list
    const handedBack = await reload({item: answer.item});
    showProgress();
    return total ? show(handedBack.position ?? 0) : finished();
  }
  const back = await placeOf(answer.item);
  if (back === null) {  // not in this listing (an overview's filter): only the counts change
    progress = answer.progress;
    showProgress();
    return;
  }
  update(await itemAt(back), answer);
  await show(back);
}

// One action at a time: keys that arrive while a verdict is saved and the next item loads are
// dropped, not queued, so a double press records one verdict and lands on the next item. A verdict
// holds the keys for at least `hold` ms from its press: the next item can be ready in 20 ms, sooner
// than the second press of a double press, and sooner than anyone could have judged it.
async function exclusive(action, hold = 0) {
  if (busy) return;
  busy = true;
  document.body.dataset.busy = "1";
  const until = performance.now() + hold;
  try {
    await action();
  } catch (error) {
    problem(error.message);
  } finally {
    const left = until - performance.now();
    if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
    busy = false;
    delete document.body.dataset.busy;
  }
}

const help = document.getElementById("help");
document.getElementById("help-button").addEventListener("click", () => { help.hidden = !help.hidden; });

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || !total) return;
  const key = event.key;
  if (key === " ") { event.preventDefault(); wavesurfer.playPause(); }
  else if (key === "?") help.hidden = !help.hidden;
  else if (key === "Escape") help.hidden = true;
  else if (key === "+" || key === "=") zoomBy(ZOOM_STEP);
  else if (key === "-") zoomBy(1 / ZOOM_STEP);
  else if (event.repeat && (key === "a" || key === "x" || key === "u" || /^[1-9]$/.test(key))) return;  // a key held down
  else if (key === "a") exclusive(() => judge("accept"), DOUBLE_PRESS_MS);
  else if (key === "x") exclusive(() => judge("reject"), DOUBLE_PRESS_MS);
  else if (/^[1-9]$/.test(key) && Number(key) <= taxonomy.length) {
    exclusive(() => judge("correct", taxonomy[Number(key) - 1]), DOUBLE_PRESS_MS);
  }
  else if (key === "n") exclusive(() => show(index + 1));
  else if (key === "p") exclusive(() => show(index - 1));
  else if (key === "u") exclusive(undo);
});

document.getElementById("player").addEventListener("wheel", (event) => {
  event.preventDefault();
  zoomBy(event.deltaY < 0 ? ZOOM_STEP : 1 / ZOOM_STEP);
}, {passive: false});

if (document.getElementById("team")) {
  document.getElementById("team-refresh").addEventListener("click", showTeam);
  showTeam();
  setInterval(showTeam, 60000);
}
const loaded = await reload();
learningHead = loaded.learning?.head ?? null;
showLearning(loaded.learning);
showProgress();
if (total) {
  await exclusive(() => showFrom(loaded));
} else {
  document.getElementById("name").textContent = "nothing to review";
  document.body.dataset.state = "empty";
}
