// The page of `harlite export --format web` (and of `harlite serve`): the phone's motion sensors into
// the model, the live activity, and recordings in harlite's dataset CSV format.
//
// devicemotion -> the model's units and axes (phone axes, as UCI HAR's phone and Android report them):
//   acc (g)      = sign * accelerationIncludingGravity (m/s^2) / 9.80665, x y z as they are;
//   gyro (rad/s) = rotationRate.alpha, .beta, .gamma (deg/s, about x, y, z) * pi / 180;
//   t (s)        = event.timeStamp / 1000.
// sign is +1 on Android Chrome (at rest the upward axis reads +9.8, as on Android) and -1 on iOS, whose
// WebKit passes Core Motion's acceleration, which reads -9.8 upward. The page guesses iOS from the user
// agent; the "flip" switch corrects a wrong guess and is remembered.
import { loadClassifier } from './harlite.js';

const G = 9.80665;
const DEG = Math.PI / 180;
const COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf',
  '#aec7e8', '#ffbb78', '#98df8a', '#ff9896', '#c5b0d5', '#c49c94', '#f7b6d2', '#c7c7c7', '#dbdb8d', '#9edae5'];
// harlite's rule for labels and subjects (harlite/core/protocol.py check_label): at most 31 bytes of text
// without control characters, commas, '=', double quotes or backslashes.
const LABEL_BYTES = 31;
const BAD_LABEL = /[\x00-\x1f\x7f,="\\]/;
const isName = (text) => text.length > 0 && !BAD_LABEL.test(text) && new TextEncoder().encode(text).length <= LABEL_BYTES;
const FLIP_KEY = 'harlite.flip';
const $ = (id) => document.getElementById(id);

const isIOS = /iPhone|iPad|iPod/.test(navigator.userAgent) || (/Macintosh/.test(navigator.userAgent) && navigator.maxTouchPoints > 1);

// What tests and curious users can read: window.harlitePage.
const page = { predictions: [], recordings: [], events: 0, ready: null, clf: null, server: null };
window.harlitePage = page;

let clf = null;
let recording = null; // { label, subject, parts: [[rows]], index0 }
let listening = false;
let lastValues = null;
let painted = false;
let rateCount = 0;
let rateSince = 0;
let warned = false; // the status shows a sensor problem; the next good event clears it

function say(text, error = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', error);
}

// The shortest decimal that reads back as the same float32 (what Python's float32 repr writes).
function float32Text(v) {
  for (let digits = 1; digits < 10; digits++) {
    const text = v.toPrecision(digits);
    if (Math.fround(Number(text)) === v) return String(Number(text));
  }
  return String(v);
}

function header() {
  return ['time_s', ...clf.rawChannels, 'label'].join(',');
}

function onSample(values, index) {
  if (!recording) return;
  const part = recording.parts[recording.parts.length - 1];
  if (part.index0 === null) part.index0 = index;
  const time = Number(((index - part.index0) / clf.rateHz).toFixed(6));
  part.rows.push(`${time},${Array.from(values, float32Text).join(',')},${recording.label}`);
}

function onRestart() {
  if (recording) recording.parts.push({ index0: null, rows: [] });
}

function colourOf(index) {
  return COLOURS[index % COLOURS.length];
}

function drawPrediction(prediction) {
  const canvas = $('timeline');
  const ctx = canvas.getContext('2d');
  const step = 6;
  ctx.drawImage(canvas, -step, 0);
  ctx.fillStyle = colourOf(prediction.index);
  ctx.fillRect(canvas.width - step, 0, step, canvas.height);
}

function showPrediction(prediction) {
  $('current').textContent = prediction.label.replaceAll('_', ' ').toLowerCase();
  $('current').style.color = colourOf(prediction.index);
  const meters = $('probabilities').querySelectorAll('meter');
  prediction.p.forEach((p, i) => { meters[i].value = p; });
  drawPrediction(prediction);
}

function paint() {
  painted = false;
  if (!lastValues) return;
  const [acc, gyro] = lastValues;
  ['x', 'y', 'z'].forEach((axis, i) => {
    $(`acc-${axis}`).textContent = acc[i].toFixed(2);
    $(`gyro-${axis}`).textContent = gyro ? gyro[i].toFixed(2) : '–';
  });
  if (recording) {
    const samples = recording.parts.reduce((n, part) => n + part.rows.length, 0);
    $('record-status').textContent = `Recording ${recording.label}: ${(samples / clf.rateHz).toFixed(1)} s`;
  }
}

function onMotion(event) {
  const a = event.accelerationIncludingGravity;
  const r = event.rotationRate;
  if (!a || a.x === null || a.y === null || a.z === null) {
    say('This browser gives no acceleration: open the page on a phone.', true);
    warned = true;
    return;
  }
  const needsGyro = clf.rawChannels.length === 6;
  if (needsGyro && (!r || r.alpha === null || r.beta === null || r.gamma === null)) {
    say('This model needs a gyroscope, and this phone or browser reports none.', true);
    warned = true;
    return;
  }
  if (warned) {
    warned = false;
    say(listeningText());
  }
  const sign = $('flip').checked ? -1 : 1;
  const acc = [sign * a.x / G, sign * a.y / G, sign * a.z / G];
  const gyro = needsGyro ? [r.alpha * DEG, r.beta * DEG, r.gamma * DEG] : undefined;
  page.events++;
  rateCount++;
  const now = event.timeStamp;
  if (now - rateSince >= 1000) {
    $('rate').textContent = `${Math.round(rateCount * 1000 / Math.max(now - rateSince, 1))} samples/s`;
    rateCount = 0;
    rateSince = now;
  }
  for (const prediction of clf.push({ t: event.timeStamp / 1000, acc, gyro })) {
    page.predictions.push(prediction);
    showPrediction(prediction);
  }
  lastValues = [acc, gyro];
  if (!painted) {
    painted = true;
    requestAnimationFrame(paint);
  }
}

async function start() {
  if (listening) return;
  try {
    if (typeof DeviceMotionEvent !== 'undefined' && typeof DeviceMotionEvent.requestPermission === 'function') {
      const answer = await DeviceMotionEvent.requestPermission();
      if (answer !== 'granted') {
        say('Motion sensors were not allowed: allow them in the browser settings and reload.', true);
        return;
      }
    }
  } catch (error) {
    say(`Motion sensors: ${error.message}`, true);
    return;
  }
  window.addEventListener('devicemotion', onMotion);
  listening = true;
  if (page.server?.status) setInterval(beat, 2000);
  $('start').disabled = true;
  $('record').disabled = false;
  say(listeningText());
}

function listeningText() {
  return `Listening. A prediction every ${(clf.hop / clf.rateHz).toFixed(2)} s once ${(clf.window / clf.rateHz).toFixed(2)} s have arrived.`;
}

// Tell harlite serve how this phone is doing (its terminal shows phones, samples/s, the activity).
let beatEvents = 0;
function beat() {
  const rate = (page.events - beatEvents) / 2;
  beatEvents = page.events;
  const last = page.predictions[page.predictions.length - 1];
  fetch(page.server.status, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ samples_per_s: rate, activity: last ? last.label : '' }),
  }).catch(() => {});
}

function chosenLabel() {
  const typed = $('new-label').value.trim();
  return typed || $('label').value;
}

function fileStem(label) {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${label.replace(/[^\w.-]+/g, '_') || 'unlabelled'}-${stamp}`;
}

async function save(label, subject, csv) {
  if (page.server?.upload) {
    const query = new URLSearchParams({ subject, label });
    const response = await fetch(`${page.server.upload}?${query}`, {
      method: 'POST', headers: { 'Content-Type': 'text/csv' }, body: csv,
    });
    const answer = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
    return `saved on the computer: ${answer.saved}`;
  }
  const link = document.createElement('a');
  link.href = URL.createObjectURL(new Blob([csv], { type: 'text/csv' }));
  link.download = `${fileStem(label)}.csv`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  return `downloaded ${link.download}`;
}

async function toggleRecording() {
  if (!recording) {
    const label = chosenLabel();
    const subject = $('subject').value.trim();
    if (!isName(label)) return say('A label is at most 31 bytes without commas, double quotes, = or \\.', true);
    if (!isName(subject) || subject.startsWith('.') || subject.includes('/')) {
      return say('A subject is at most 31 bytes without /, commas, double quotes, = or \\, not starting with a dot.', true);
    }
    recording = { label, subject, parts: [{ index0: null, rows: [] }] };
    $('record').textContent = 'Stop';
    $('record').classList.add('active');
    return undefined;
  }
  const done = recording;
  recording = null;
  $('record').textContent = 'Record';
  $('record').classList.remove('active');
  for (const part of done.parts.filter((p) => p.rows.length >= 2)) {
    const csv = `${header()}\n${part.rows.join('\n')}\n`;
    page.recordings.push({ label: done.label, subject: done.subject, csv });
    const item = document.createElement('li');
    try {
      item.textContent = `${done.label}, ${(part.rows.length / clf.rateHz).toFixed(1)} s: ${await save(done.label, done.subject, csv)}`;
    } catch (error) {
      item.textContent = `${done.label}: not saved (${error.message})`;
      item.classList.add('error');
    }
    $('saved').append(item);
  }
  $('record-status').textContent = '';
  return undefined;
}

async function main() {
  const smoothing = new URLSearchParams(location.search).get('smoothing') ?? 'none';
  clf = await loadClassifier('.', { smoothing, onSample, onRestart });
  page.clf = clf;
  try {
    const response = await fetch('serve.json', { cache: 'no-store' });
    if (response.ok) page.server = await response.json();
  } catch { /* a static host: recordings are downloaded */ }
  $('model-name').textContent = clf.manifest.name;
  const flip = localStorage.getItem(FLIP_KEY);
  $('flip').checked = flip === null ? isIOS : flip === '1';
  $('convention').textContent = isIOS ? 'iOS detected' : 'Android convention';
  $('flip').addEventListener('change', () => localStorage.setItem(FLIP_KEY, $('flip').checked ? '1' : '0'));
  for (const [i, label] of clf.labels.entries()) {
    const option = document.createElement('option');
    option.value = label;
    option.textContent = label;
    $('label').append(option);
    const bar = document.createElement('div');
    bar.className = 'bar';
    const name = document.createElement('span');
    name.textContent = label;
    const meter = document.createElement('meter');
    meter.min = 0;
    meter.max = 1;
    bar.append(name, meter);
    $('probabilities').append(bar);
    const key = document.createElement('span');
    const swatch = document.createElement('i');
    swatch.style.background = colourOf(i);
    key.append(swatch, label);
    $('legend').append(key);
  }
  $('start').disabled = false;
  $('start').addEventListener('click', start);
  $('record').addEventListener('click', toggleRecording);
  say(page.server?.upload ? 'Ready: recordings go to the computer running harlite serve.' : 'Ready: recordings are downloaded.');
}

page.ready = main().catch((error) => {
  say(`Could not load the model: ${error.message}`, true);
  throw error;
});
