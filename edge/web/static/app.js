// The LAN page: live video (WebRTC, MJPEG fallback), alarms, events (SSE), health.
"use strict";
const XL = JSON.parse(document.getElementById("xl-config").textContent);
const S = XL.strings;
const $ = (sel) => document.querySelector(sel);

function post(url, body) {
  return fetch(url, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": XL.csrf },
    body: JSON.stringify(body || {}),
  });
}

function when(ts) {
  return new Date(ts * 1000).toLocaleString(XL.lang === "zh" ? "zh-CN" : "en-GB");
}

// --- live video ----------------------------------------------------------------------

function waitGathering(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => { if (pc.iceGatheringState === "complete") { resolve(); } };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(resolve, 2000);  // host candidates come at once; do not wait for more
  });
}

async function startLive(camera) {
  const video = document.getElementById("video-" + camera);
  const pc = new RTCPeerConnection({ iceServers: [] });
  window.xlPeers = window.xlPeers || {};
  window.xlPeers[camera] = pc;  // for diagnostics and the page's tests
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.ontrack = (ev) => { video.srcObject = ev.streams[0] || new MediaStream([ev.track]); video.play().catch(() => {}); };
  let settled = false;
  const fallback = () => { if (!settled) { settled = true; pc.close(); mjpeg(camera); } };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "connected") settled = true;
    if (pc.connectionState === "failed") fallback();
  };
  setTimeout(() => { if (pc.connectionState !== "connected") fallback(); }, 10000);
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await waitGathering(pc);
    const resp = await post(`/api/live/${encodeURIComponent(camera)}/offer`,
      { sdp: pc.localDescription.sdp, type: pc.localDescription.type });
    if (!resp.ok) throw new Error("offer refused: " + resp.status);
    await pc.setRemoteDescription(await resp.json());
  } catch (err) {
    console.warn("WebRTC", camera, err);
    fallback();
  }
}

function mjpeg(camera) {
  const video = document.getElementById("video-" + camera);
  const img = document.createElement("img");
  img.id = "mjpeg-" + camera;
  img.alt = camera;
  img.src = `/live/${encodeURIComponent(camera)}.mjpg`;
  video.replaceWith(img);
  document.getElementById("live-" + camera).dataset.note = S.fallback;
}

// --- alarms ----------------------------------------------------------------------------

let audio = null;
function beep() {
  try {
    audio = audio || new AudioContext();
    const osc = audio.createOscillator(), gain = audio.createGain();
    osc.type = "square"; osc.frequency.value = 880; gain.gain.value = 0.15;
    osc.connect(gain).connect(audio.destination);
    osc.start(); osc.stop(audio.currentTime + 0.6);
  } catch (err) { /* no sound device */ }
}

// One banner per alarm, newest first, from the device's alarm states (GET /api/alarms and the
// stream's "alarms" event): red while it waits for someone, calm once help is coming.
const heardAlarms = new Set();
function alarmBanner(a) {
  const div = document.createElement("div");
  div.className = "banner " + (a.waiting ? "waiting" : "help-coming");
  div.id = "alarm-" + a.id;
  div.dataset.state = a.state;
  const text = document.createElement("span");
  const presses = a.presses > 1 ? ` · ${a.presses} ${S.presses}` : "";
  text.textContent = `${S.alarm} · ${when(a.ts)}${presses}`;
  div.append(text);
  if (!a.waiting) {
    const note = document.createElement("b");
    note.className = "state";
    note.textContent = a.via === "hub" ? S.help_coming_hub : `${S.acked} · ${a.by || ""}`;
    div.append(note);
  } else if (XL.role === "operator") {
    const btn = document.createElement("button");
    btn.textContent = S.ack;
    btn.className = "ack";
    btn.onclick = async () => {
      btn.disabled = true;
      const resp = await post(`/api/alarms/${a.id}/ack`);
      if (!resp.ok && resp.status !== 404) btn.disabled = false;
    };
    div.append(btn);
  }
  return div;
}

function showAlarms(list) {
  const box = $("#alarms");
  const waiting = list.filter((a) => a.waiting);
  const nodes = [];
  if (waiting.length > 1 && XL.role === "operator") {
    const all = document.createElement("button");
    all.id = "ack-all";
    all.textContent = `${S.ack_all} (${waiting.length})`;
    all.onclick = async () => { all.disabled = true; await post("/api/alarms/ack-all"); };
    nodes.push(all);
  }
  list.forEach((a) => nodes.push(alarmBanner(a)));
  box.replaceChildren(...nodes);
  if (waiting.some((a) => !heardAlarms.has(a.id))) beep();
  waiting.forEach((a) => heardAlarms.add(a.id));
}

async function loadAlarms() {
  const resp = await fetch("/api/alarms", { credentials: "same-origin" });
  if (resp.ok) showAlarms((await resp.json()).items);
}

// --- events ----------------------------------------------------------------------------

function filters() {
  const f = new FormData($("#filters"));
  const q = new URLSearchParams();
  for (const [k, v] of f) {
    if (!v) continue;
    q.set(k, (k === "since" || k === "until") ? String(new Date(v).getTime() / 1000) : v);
  }
  return q;
}

function matches(ev) {
  const q = filters();
  if (q.get("camera") && ev.camera !== q.get("camera")) return false;
  if (q.get("type") && ev.type !== q.get("type")) return false;
  if (q.get("since") && ev.ts < Number(q.get("since"))) return false;
  if (q.get("until") && ev.ts > Number(q.get("until"))) return false;
  return true;
}

function row(ev) {
  const li = document.createElement("li");
  li.className = "event " + ev.type;
  li.dataset.id = ev.id;
  li.dataset.type = ev.type;
  li.dataset.ts = ev.ts;
  if (ev.thumb) {
    const img = document.createElement("img");
    img.src = ev.thumb; img.alt = ev.type;
    if (ev.snapshot_url) { img.style.cursor = "zoom-in"; img.onclick = () => window.open(ev.snapshot_url, "_blank"); }
    li.append(img);
  }
  const body = document.createElement("div");
  const title = document.createElement("div");
  title.textContent = (S.types[ev.type] || ev.type) + (ev.camera ? " · " + ev.camera : "");
  const meta = document.createElement("div");
  meta.className = "meta";
  const extra = [];
  if (ev.data.zones && ev.data.zones.length) extra.push(ev.data.zones.join(", "));
  if (ev.data.score) extra.push(Math.round(ev.data.score * 100) + "%");
  if (ev.data.presses) extra.push(ev.data.presses + " " + S.presses);
  meta.textContent = [when(ev.ts), ...extra].join(" · ");
  body.append(title, meta);
  if (ev.clip_url) {
    const a = document.createElement("button");
    a.textContent = "▶ " + S.clip;
    a.className = "play";
    a.onclick = () => { const v = $("#clip"); v.src = ev.clip_url; $("#player").showModal(); v.play().catch(() => {}); };
    body.append(a);
  }
  li.append(body);
  return li;
}

let before = null;
async function loadEvents(append) {
  const q = filters();
  if (append && before) q.set("before", before);
  const resp = await fetch("/api/events?" + q, { credentials: "same-origin" });
  if (!resp.ok) return;
  const body = await resp.json();
  const list = $("#events");
  if (!append) list.replaceChildren();
  body.items.forEach((ev) => list.append(row(ev)));
  before = body.next_before;
  $("#more").hidden = !before;
}

function listen() {
  const es = new EventSource("/api/events/stream?after=" + XL.last_seq);
  es.addEventListener("alarms", (msg) => showAlarms(JSON.parse(msg.data)));
  es.addEventListener("xl", (msg) => {
    const ev = JSON.parse(msg.data);
    if (ev.type === "motion_update") {  // a motion has ended: its line gets its snapshot and clip
      const li = document.querySelector(`#events li[data-id="${ev.data.motion_id}"]`);
      if (li) li.replaceWith(row({ ...ev, id: ev.data.motion_id, type: "motion", ts: Number(li.dataset.ts) }));
      return;
    }
    if (!matches(ev) || document.querySelector(`#events li[data-id="${ev.id}"]`)) return;
    const li = row(ev);
    li.classList.add("new");
    $("#events").prepend(li);
  });
}

// --- health ------------------------------------------------------------------------------

function mb(n) { return (n / 1048576).toFixed(0) + " MB"; }

async function health() {
  const resp = await fetch("/api/health", { credentials: "same-origin" });
  if (!resp.ok) return;
  const h = await resp.json();
  const sync = $("#h-sync");
  sync.textContent = h.sync.connected ? S.connected : S.disconnected;
  sync.className = h.sync.connected ? "good" : "bad";
  $("#h-contact").textContent = h.sync.last_hub_contact
    ? Math.max(0, Math.round(Date.now() / 1000 - h.sync.last_hub_contact)) + " " + S.seconds_ago : S.never;
  $("#h-outbox").textContent = h.outbox;
  $("#h-disk").textContent = `${mb(h.disk.media_bytes)} / ${mb(h.disk.quota_bytes)} · ${mb(h.disk.free)} ${S.free}`;
  if ($("#h-mcu") && h.mcu) { $("#h-mcu").textContent = h.mcu.online ? S.online : S.offline; $("#h-mcu").className = h.mcu.online ? "good" : "bad"; }
  const rows = h.cameras.map((c) => {
    const tr = document.createElement("tr");
    tr.id = "h-camera-" + c.name;
    const th = document.createElement("th"); th.textContent = c.name;
    const td = document.createElement("td");
    td.textContent = `${S[c.state] || S.down} · ${c.fps} fps · ${c.viewers} ${S.viewers} · ${c.bitrate_kbps} kbit/s`;
    td.className = c.state === "up" ? "good" : "bad";
    tr.append(th, td);
    const info = document.getElementById("live-" + c.name);
    if (info) info.textContent = `${c.viewers} ${S.viewers} · ${c.bitrate_kbps} kbit/s ${info.dataset.note || ""}`;
    return tr;
  });
  $("#h-cameras").replaceChildren(...rows);
}

// --- start --------------------------------------------------------------------------------

$("#filters").addEventListener("submit", (e) => { e.preventDefault(); loadEvents(false); });
$("#more").addEventListener("click", () => loadEvents(true));
XL.cameras.forEach(startLive);
loadAlarms();
loadEvents(false);
listen();
health();
setInterval(health, 3000);
