// mtmm serve's page: upload or record, transcript, POST /v1/predict, then
// class probabilities as bars, the valence-arousal plane and the last
// predictions. Plain JavaScript, nothing loaded from elsewhere.
// Recordings (and uploads in formats the server does not read, e.g. webm)
// are decoded by the browser (Web Audio) and sent as 16-bit mono WAV.
"use strict";

const SERVER_FORMATS = /\.(wav|flac|ogg|mp3)$/i;
const WAV_RATE = 16000;
const HISTORY = 10;
const state = { model: null, audio: null, audioName: null, history: [] };
const $ = (id) => document.getElementById(id);

function headers() {
  const key = $("api-key").value.trim();
  return key ? { Authorization: "Bearer " + key } : {};
}

function setStatus(message, error) {
  $("status").textContent = message;
  $("status").className = error ? "error" : "";
}

async function errorOf(response) {
  try {
    const body = await response.json();
    return body.detail || response.statusText;
  } catch (e) {
    return response.status + " " + response.statusText;
  }
}

async function loadModel() {
  const response = await fetch("/v1/model", { headers: headers() });
  if (response.status === 401) {
    $("key-row").hidden = false;
    $("model-summary").textContent =
      "This server needs an API key: enter it below, then predict.";
    return;
  }
  if (!response.ok) {
    $("model-summary").textContent = await errorOf(response);
    return;
  }
  const model = await response.json();
  state.model = model;
  const scale = model.rating_scale.join("\u2013");
  const parts = [];
  if (model.labels.length) parts.push("Classes " + model.labels.join(", "));
  if (model.dimensions.length)
    parts.push(model.dimensions.join(", ") + " on " + scale);
  parts.push(
    Object.values(model.encoders).join(" + ") + " (" + model.backend + ")"
  );
  $("model-summary").textContent =
    (model.card && model.card.title ? model.card.title + ". " : "") +
    parts.join(" \u00b7 ");
  if (!model.modalities.includes("text")) {
    $("text-block").hidden = true;
  } else {
    $("text-hint").textContent = model.asr_source
      ? "Leave it empty to let the model's ASR (" + model.asr_source +
        ") write it; then edit it and predict again."
      : "Leave it empty to predict from the audio alone.";
  }
  if (!model.modalities.includes("audio")) {
    $("audio-name").textContent = "This model reads transcripts only.";
  }
}

// ----- audio: upload, record, WAV encoding -----

function useAudio(blob, name) {
  state.audio = blob;
  state.audioName = name;
  $("audio-name").textContent = name + " (" +
    (blob.size / 1024).toFixed(0) + " kB)";
  const player = $("player");
  if (player.src) URL.revokeObjectURL(player.src);
  player.src = URL.createObjectURL(blob);
  player.hidden = false;
}

async function toWav(blob) {
  // decode whatever the browser can, mix down, resample to 16 kHz, PCM16
  const data = await blob.arrayBuffer();
  const context = new AudioContext();
  let decoded;
  try {
    decoded = await context.decodeAudioData(data);
  } finally {
    context.close();
  }
  const frames = Math.max(1, Math.ceil(decoded.duration * WAV_RATE));
  const offline = new OfflineAudioContext(1, frames, WAV_RATE);
  const source = offline.createBufferSource();
  source.buffer = decoded;
  source.connect(offline.destination); // channels are mixed down to mono
  source.start();
  const rendered = await offline.startRendering();
  return encodeWav(rendered.getChannelData(0), WAV_RATE);
}

function encodeWav(samples, rate) {
  const buffer = new ArrayBuffer(44 + samples.length * 2);
  const view = new DataView(buffer);
  const text = (offset, s) => {
    for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i));
  };
  text(0, "RIFF");
  view.setUint32(4, 36 + samples.length * 2, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  text(36, "data");
  view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([buffer], { type: "audio/wav" });
}

async function chooseFile() {
  const file = $("file").files[0];
  if (!file) return;
  if (SERVER_FORMATS.test(file.name)) {
    useAudio(file, file.name);
    return;
  }
  setStatus("Converting " + file.name + " to WAV\u2026");
  try {
    const name = file.name.replace(/\.[^.]*$/, "") + ".wav";
    useAudio(await toWav(file), name);
    setStatus("");
  } catch (e) {
    setStatus(file.name + ": this browser cannot decode it; send WAV, " +
      "FLAC, OGG or MP3", true);
  }
}

let recorder = null;

async function toggleRecording() {
  const button = $("record");
  if (recorder) {
    recorder.stop();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    setStatus("No microphone: " + e.message, true);
    return;
  }
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (event) => chunks.push(event.data);
  recorder.onstop = async () => {
    stream.getTracks().forEach((track) => track.stop());
    recorder = null;
    button.textContent = "\u25cf Record";
    button.classList.remove("recording");
    try {
      const recorded = new Blob(chunks, { type: chunks[0] && chunks[0].type });
      useAudio(await toWav(recorded), "recording.wav");
      setStatus("");
    } catch (e) {
      setStatus("The recording could not be decoded: " + e.message, true);
    }
  };
  recorder.start();
  button.textContent = "\u25a0 Stop";
  button.classList.add("recording");
  setStatus("Recording\u2026 press Stop when done.");
}

// ----- prediction -----

async function predict() {
  const text = $("text-block").hidden ? "" : $("text").value.trim();
  if (!state.audio && !text) {
    setStatus("Give audio, a transcript, or both.", true);
    return;
  }
  const form = new FormData();
  if (state.audio) form.append("audio", state.audio, state.audioName);
  if (text) form.append("text", text);
  $("predict").disabled = true;
  setStatus("Predicting\u2026");
  try {
    const response = await fetch("/v1/predict", {
      method: "POST",
      body: form,
      headers: headers(),
    });
    if (!response.ok) {
      if (response.status === 401) $("key-row").hidden = false;
      setStatus(await errorOf(response), true);
      return;
    }
    const result = await response.json();
    if (!state.model) await loadModel();
    show(result);
    remember(result);
    if (result.path === "audio+asr" && result.text_used)
      $("text").value = result.text_used;
    setStatus("Done.");
  } catch (e) {
    setStatus("The server did not answer: " + e.message, true);
  } finally {
    $("predict").disabled = false;
  }
}

function ratingOf(result, dimension) {
  const model = state.model;
  const key = model && model.rating_keys[dimension];
  return key in result ? result[key] : null;
}

function show(result) {
  $("result-empty").hidden = true;
  $("result").hidden = false;
  $("label").textContent = result.label || "\u2013";
  $("path").textContent = result.path;
  $("used").textContent = result.text_used
    ? "Transcript used: \u201c" + result.text_used + "\u201d"
    : "No transcript: predicted from the audio alone.";
  $("warning").hidden = !result.warning;
  $("warning").textContent = result.warning ? "\u26a0 " + result.warning : "";
  const bars = $("bars");
  bars.replaceChildren();
  const probs = result.probs || {};
  const best = result.label;
  for (const [label, p] of Object.entries(probs)) {
    const row = document.createElement("div");
    row.className = "bar-row" + (label === best ? " top" : "");
    const name = document.createElement("span");
    name.className = "bar-name";
    name.textContent = label;
    const track = document.createElement("div");
    track.className = "bar-track";
    const fill = document.createElement("div");
    fill.className = "bar-fill";
    fill.style.width = (100 * p).toFixed(1) + "%";
    track.appendChild(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = (100 * p).toFixed(1) + " %";
    row.append(name, track, value);
    bars.appendChild(row);
  }
  const model = state.model;
  const dims = (model ? model.dimensions : []).map((d) => {
    const value = ratingOf(result, d);
    return value === null ? null : d + " " + value.toFixed(2);
  }).filter((x) => x);
  $("dims").textContent = dims.length
    ? dims.join(" \u00b7 ") + " (scale " + model.rating_scale.join("\u2013") + ")"
    : "";
  drawPlane(result);
}

function remember(result) {
  state.history.unshift(result);
  state.history = state.history.slice(0, HISTORY);
  $("history-empty").hidden = true;
  const list = $("history");
  list.replaceChildren();
  for (const item of state.history) {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = item.file || "(text only)";
    const parts = [];
    if (item.label)
      parts.push(item.label + " " + (100 * item.probs[item.label]).toFixed(0) + " %");
    for (const d of state.model ? state.model.dimensions : []) {
      const value = ratingOf(item, d);
      if (value !== null) parts.push(d.slice(0, 1).toUpperCase() + " " + value.toFixed(2));
    }
    parts.push(item.path);
    if (item.text_used) parts.push("\u201c" + item.text_used + "\u201d");
    li.append(name, document.createTextNode(" \u00b7 " + parts.join(" \u00b7 ")));
    list.appendChild(li);
  }
}

// ----- the valence-arousal plane (SVG), axes on the model's scale -----

const SVG = "http://www.w3.org/2000/svg";
const BOX = { left: 44, right: 330, top: 12, bottom: 258 };

function svg(name, attributes, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawPlane(current) {
  const model = state.model;
  const ok = model && model.dimensions.includes("valence") &&
    model.dimensions.includes("arousal");
  $("plane-block").hidden = !ok;
  if (!ok) return;
  const [low, high] = model.rating_scale;
  const x = (v) => BOX.left + (v - low) / (high - low) * (BOX.right - BOX.left);
  const y = (a) => BOX.bottom - (a - low) / (high - low) * (BOX.bottom - BOX.top);
  const plane = $("plane");
  plane.replaceChildren();
  const step = high - low > 8 ? 2 : 1;
  for (let t = low; t <= high + 1e-9; t += step) {
    plane.append(
      svg("line", { x1: x(t), y1: BOX.top, x2: x(t), y2: BOX.bottom, class: "grid" }),
      svg("line", { x1: BOX.left, y1: y(t), x2: BOX.right, y2: y(t), class: "grid" }),
      svg("text", { x: x(t), y: BOX.bottom + 14, "text-anchor": "middle" }, String(t)),
      svg("text", { x: BOX.left - 8, y: y(t) + 4, "text-anchor": "end" }, String(t))
    );
  }
  const mid = (low + high) / 2;
  plane.append(
    svg("line", { x1: x(mid), y1: BOX.top, x2: x(mid), y2: BOX.bottom, class: "axis" }),
    svg("line", { x1: BOX.left, y1: y(mid), x2: BOX.right, y2: y(mid), class: "axis" }),
    svg("text", { x: (BOX.left + BOX.right) / 2, y: BOX.bottom + 32,
      "text-anchor": "middle", class: "axis-name" }, "valence (negative \u2192 positive)"),
    svg("text", { x: 12, y: (BOX.top + BOX.bottom) / 2, "text-anchor": "middle",
      class: "axis-name",
      transform: "rotate(-90 12 " + (BOX.top + BOX.bottom) / 2 + ")" },
      "arousal (calm \u2192 excited)")
  );
  const clamp = (v) => Math.min(high, Math.max(low, v));
  for (const item of state.history) {
    if (item === current) continue;
    const v = ratingOf(item, "valence"), a = ratingOf(item, "arousal");
    plane.append(svg("circle", { cx: x(clamp(v)), cy: y(clamp(a)), r: 5, class: "past" }));
  }
  const v = ratingOf(current, "valence"), a = ratingOf(current, "arousal");
  const cx = x(clamp(v)), cy = y(clamp(a));
  plane.append(svg("circle", { cx: cx, cy: cy, r: 8, class: "now" }));
  const right = cx < (BOX.left + BOX.right) / 2;
  plane.append(svg("text", { x: cx + (right ? 12 : -12), y: cy - 10,
    "text-anchor": right ? "start" : "end", class: "now-label" },
    (current.label ? current.label + " " : "") +
    "(" + v.toFixed(2) + ", " + a.toFixed(2) + ")"));
}

window.addEventListener("DOMContentLoaded", () => {
  $("file").addEventListener("change", chooseFile);
  $("record").addEventListener("click", toggleRecording);
  $("predict").addEventListener("click", predict);
  $("api-key").addEventListener("change", loadModel);
  if (!(navigator.mediaDevices && window.MediaRecorder)) {
    $("record").disabled = true;
    $("record").title = "Recording needs a secure page (https or localhost)";
  }
  loadModel().catch((e) => {
    $("model-summary").textContent = "The server did not answer: " + e.message;
  });
});
