// The page side of frameduel's browser runner (browser/page.py drives it through Playwright).
// Everything is loaded from this page's own origin (127.0.0.1): the runtimes from /npm/, the artefact
// from /model/. One runtime and backend per page: window.frameduel.load(), then infer() and time().
"use strict";

const NPM = "/npm/";
// runtime -> the UMD bundles it needs, in load order (each defines or extends a global: tf, ort).
const BUNDLES = {
  tfjs: ["@tensorflow/tfjs-core/dist/tf-core.min.js", "@tensorflow/tfjs-converter/dist/tf-converter.min.js",
         "@tensorflow/tfjs-backend-cpu/dist/tf-backend-cpu.min.js"],
  "tfjs-webgl": ["@tensorflow/tfjs-backend-webgl/dist/tf-backend-webgl.min.js"],
  "tfjs-wasm": ["@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js"],
  "onnxruntime-web": ["onnxruntime-web/dist/ort.wasm.min.js"],
};

function loadScript(path) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = NPM + path;
    script.onload = resolve;
    script.onerror = () => reject(new Error("cannot load " + path));
    document.head.appendChild(script);
  });
}

// What WebGL runs on: a GPU's name, or a software rasteriser (SwiftShader, llvmpipe).
function webglRenderer() {
  const gl = document.createElement("canvas").getContext("webgl2") || document.createElement("canvas").getContext("webgl");
  if (!gl) return "";
  const info = gl.getExtension("WEBGL_debug_renderer_info");
  return String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
}

class TfjsModel {
  static async create(backend, modelUrl, threads) {
    for (const path of [...BUNDLES.tfjs, ...BUNDLES["tfjs-" + backend]]) await loadScript(path);
    if (backend === "wasm") {
      tf.wasm.setWasmPaths(NPM + "@tensorflow/tfjs-backend-wasm/dist/");
      if (tf.wasm.setThreadsCount) tf.wasm.setThreadsCount(threads);
    }
    if (!(await tf.setBackend(backend))) throw new Error("TF.js backend " + backend + " is not available here");
    await tf.ready();
    const started = performance.now();
    const model = await tf.loadGraphModel(modelUrl + "/model.json");
    return [new TfjsModel(model), (performance.now() - started) / 1e3];
  }
  constructor(model) { this.model = model; }
  async run(data, shape) {
    const input = tf.tensor(data, shape, "float32");
    const output = this.model.execute(input);  // one input, one output: the graph's only tensors
    const values = await output.data();  // on webgl this waits for the GPU and reads the result back
    const outShape = output.shape;
    tf.dispose([input, output]);
    return [values, outShape];
  }
}

class OrtModel {
  static async create(backend, modelUrl, threads) {
    for (const path of BUNDLES["onnxruntime-web"]) await loadScript(path);
    ort.env.wasm.wasmPaths = NPM + "onnxruntime-web/dist/";  // absolute: a relative path cannot resolve its .mjs
    ort.env.wasm.numThreads = threads;
    const started = performance.now();
    const session = await ort.InferenceSession.create(modelUrl, {executionProviders: [backend]});
    return [new OrtModel(session), (performance.now() - started) / 1e3];
  }
  constructor(session) { this.session = session; }
  async run(data, shape) {
    const feeds = {[this.session.inputNames[0]]: new ort.Tensor("float32", data, shape)};
    const output = (await this.session.run(feeds))[this.session.outputNames[0]];
    return [output.data, output.dims];
  }
}

const RUNTIMES = {tfjs: TfjsModel, "onnxruntime-web": OrtModel};

window.frameduel = {
  model: null,
  // -> {import_s: loading the runtime's JS and starting its backend, load_s: the artefact, renderer}
  async load(runtime, backend, modelUrl, threads) {
    const started = performance.now();
    const [model, loadSeconds] = await RUNTIMES[runtime].create(backend, modelUrl, threads);
    this.model = model;
    const importSeconds = (performance.now() - started) / 1e3 - loadSeconds;
    return {import_s: importSeconds, load_s: loadSeconds, renderer: backend === "webgl" ? webglRenderer() : "",
            isolated: self.crossOriginIsolated};
  },
  // Inputs and outputs travel as base64 of little-endian float32: exact, and compact over the protocol.
  async infer(base64, shape) {
    const [values, outShape] = await this.model.run(decode(base64), shape);
    return {data: encode(Float32Array.from(values)), shape: Array.from(outShape)};
  },
  // Seconds per call, every call timed on its own in the page (no round trip to Python inside).
  async time(base64, shape, warmup, calls, maxSeconds) {
    const data = decode(base64);
    for (let i = 0; i < warmup; i++) await this.model.run(data, shape);
    const seconds = [];
    const deadline = performance.now() + 1e3 * maxSeconds;
    while (seconds.length < calls && (seconds.length < 3 || performance.now() < deadline)) {
      const started = performance.now();
      await this.model.run(data, shape);
      seconds.push((performance.now() - started) / 1e3);
    }
    return seconds;
  },
};

function decode(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer);
}

function encode(floats) {
  const bytes = new Uint8Array(floats.buffer, floats.byteOffset, floats.byteLength);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}
