// harlite.js: a harlite model in the browser, the board's C compiled to WebAssembly (harlite.wasm).
//
//   import { loadClassifier } from './harlite.js';
//   const clf = await loadClassifier('.');      // the folder holding the export's manifest.json
//   const preds = clf.push({ t: 0.02, acc: [ax, ay, az], gyro: [gx, gy, gz] });
//   // preds: [] or [{ start_s, end_s, label, p, index, scores, smoothed }]
//   clf.labels; clf.rateHz; clf.reset();
//
// push() takes one sample in the model's units and axes (acceleration in g, angular rate in rad/s, time
// in seconds; no gyro for an accelerometer-only model) at any rate, regular or not. The samples are
// brought to the model's rate exactly as `harlite simulate` brings a recording (the resampler of
// harlite_resample.h: linear interpolation onto t0 + k / rateHz, a sample whose time does not increase
// dropped, an interval over 10 model periods restarting the stream), then go through the board's front
// end, model and smoothing. Each prediction comes when its window completes: label is the raw (unsmoothed)
// class, p its probabilities in the order of labels, scores the model's int8 outputs (the same bits as
// `harlite simulate --runtime c`), smoothed the class after the smoothing chosen in loadClassifier.

const SMOOTHING = { none: 0, majority: 1, ema: 2 };
const MAJORITY_MAX = 32;
const RESTART = 1;
const DROPPED = -1;

function parseSmoothing(text) {
  const [kind, arg, extra] = String(text ?? 'none').trim().toLowerCase().split(':');
  const k = Number(arg);
  if (kind === 'none' && arg === undefined) return [SMOOTHING.none, 1, 0];
  if (kind === 'majority' && extra === undefined && Number.isInteger(k) && k >= 1 && k <= MAJORITY_MAX) {
    return [SMOOTHING.majority, k, 0];
  }
  if (kind === 'ema' && extra === undefined && k > 0 && k <= 1) return [SMOOTHING.ema, 1, k];
  throw new RangeError(`bad smoothing ${JSON.stringify(text)}: use none, majority:K (1 <= K <= ${MAJORITY_MAX}) or ema:ALPHA (0 < ALPHA <= 1)`);
}

function folderURL(dir) {
  const base = globalThis.document?.baseURI ?? globalThis.location?.href;
  const url = new URL(String(dir), base);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

async function fetchOk(url, fetcher) {
  const response = await fetcher(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}; serve the whole folder of harlite export --format web`);
  return response;
}

async function sha256Hex(bytes) {
  const digest = await globalThis.crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

function checkVector(name, value, n) {
  if (!value || value.length !== n) throw new TypeError(`push: ${name} must hold ${n} numbers`);
  for (let i = 0; i < n; i++) {
    if (typeof value[i] !== 'number' || !Number.isFinite(value[i])) {
      throw new TypeError(`push: ${name}[${i}] is not a finite number`);
    }
  }
}

/**
 * Load the model of a folder written by `harlite export BUNDLE --format web` and return a classifier.
 * options.smoothing: 'none' (default), 'majority:K' or 'ema:ALPHA', as `harlite simulate --smoothing`.
 * options.onSample(values, index): called with every sample on the model's grid (a Float32Array in the
 * model's units; index counts them from the first), e.g. to record what the model saw.
 * options.onRestart(t): called when a sample arrives after a gap and the stream starts again.
 * options.keepInputs: give each prediction its int8 input window (`input`, [window][channel]).
 */
export async function loadClassifier(dir = new URL('.', import.meta.url), options = {}) {
  const fetcher = options.fetch ?? globalThis.fetch.bind(globalThis);
  const base = folderURL(dir);
  const manifest = await (await fetchOk(new URL('manifest.json', base), fetcher)).json();
  if (manifest.format !== 'harlite-web' || manifest.format_version !== 1) {
    throw new Error(`${base}manifest.json is not a harlite web export (format harlite-web, version 1)`);
  }
  const bytes = await (await fetchOk(new URL(manifest.wasm.file, base), fetcher)).arrayBuffer();
  if (bytes.byteLength !== manifest.wasm.bytes) {
    throw new Error(`${manifest.wasm.file}: ${bytes.byteLength} bytes, manifest.json says ${manifest.wasm.bytes}; export again`);
  }
  if (globalThis.crypto?.subtle && (await sha256Hex(bytes)) !== manifest.wasm.sha256) {
    throw new Error(`${manifest.wasm.file}: sha256 differs from manifest.json; export again`);
  }
  const { instance } = await WebAssembly.instantiate(bytes, {});
  const x = instance.exports;
  const labels = Object.freeze([...manifest.labels]);
  const rawChannels = Object.freeze([...manifest.raw_channels]);
  const nRaw = rawChannels.length;
  const nClasses = labels.length;
  const { window: windowLength, hop } = manifest;
  const windowBytes = windowLength * manifest.channels.length;
  const shape = [nRaw, manifest.channels.length, nClasses, windowLength, hop, Math.round(manifest.rate_hz * 1000)];
  shape.forEach((value, what) => {
    if (x.hl_config(what) !== value) throw new Error('harlite.wasm and manifest.json describe different models; export again');
  });
  const maxOut = x.hl_config(6);
  const outScale = Math.fround(manifest.output.scale);
  const outZero = manifest.output.zero_point;
  const [mode, k, alpha] = parseSmoothing(options.smoothing);
  const hasGyro = nRaw === 6;
  const stats = { samples: 0, dropped: 0, restarts: 0, windows: 0 };
  let gridIndex = 0;

  function reset() {
    x.hl_reset(mode, k, alpha);
    gridIndex = 0;
    Object.keys(stats).forEach((key) => { stats[key] = 0; });
  }

  function push(sample) {
    const { t, acc, gyro } = sample ?? {};
    if (typeof t !== 'number' || !Number.isFinite(t)) throw new TypeError('push: t must be a finite number of seconds');
    checkVector('acc', acc, 3);
    if (hasGyro) checkVector('gyro', gyro, 3);
    const raw = new Float32Array(x.memory.buffer, x.hl_sample(), nRaw);
    raw[0] = acc[0]; raw[1] = acc[1]; raw[2] = acc[2];
    if (hasGyro) { raw[3] = gyro[0]; raw[4] = gyro[1]; raw[5] = gyro[2]; }
    const n = x.hl_push(t);
    const status = x.hl_status();
    stats.samples++;
    if (status === DROPPED) { stats.dropped++; return []; }
    if (status === RESTART) { stats.restarts++; options.onRestart?.(t); }
    const buffer = x.memory.buffer;
    const made = x.hl_grid_count();
    if (options.onSample) {
      const grid = new Float32Array(buffer, x.hl_grid(), maxOut * nRaw);
      for (let i = 0; i < made; i++) options.onSample(grid.slice(i * nRaw, (i + 1) * nRaw), gridIndex + i);
    }
    gridIndex += made;
    if (!n) return [];
    const scores = new Int8Array(buffer, x.hl_scores(), maxOut * nClasses);
    const smoothed = new Int32Array(buffer, x.hl_smoothed(), maxOut);
    const starts = new Float64Array(buffer, x.hl_starts(), maxOut);
    const inputs = options.keepInputs ? new Int8Array(buffer, x.hl_inputs(), maxOut * windowBytes) : null;
    const predictions = [];
    for (let w = 0; w < n; w++) {
      const s = Array.from(scores.subarray(w * nClasses, (w + 1) * nClasses));
      let best = 0;
      for (let c = 1; c < nClasses; c++) if (s[c] > s[best]) best = c;
      const prediction = {
        start_s: starts[w],
        end_s: starts[w] + windowLength / manifest.rate_hz,
        label: labels[best],
        index: best,
        p: s.map((q) => Math.fround(Math.fround(q - outZero) * outScale)),
        scores: s,
        smoothed: labels[smoothed[w]],
      };
      if (inputs) prediction.input = inputs.slice(w * windowBytes, (w + 1) * windowBytes);
      predictions.push(prediction);
    }
    stats.windows += n;
    return predictions;
  }

  reset();
  return Object.freeze({
    labels, rawChannels, rateHz: manifest.rate_hz, window: windowLength, hop, manifest, stats, push, reset,
  });
}
