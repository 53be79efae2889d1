// Runs a TensorFlow.js graph model in TensorFlow.js itself (pure-JS CPU
// backend, model loaded from memory), for tests/nanodet.rs's parity test.
//
//   node tests/nanodet_tfjs.mjs MODEL_JSON INPUT.f32...
//
// Each input is a little-endian float32 tensor in the model's input shape.
// For each input and each output name of the model's signature it writes
// INPUT.<output name>.f32 (little-endian float32, row-major) and prints one
// JSON line {input, outputs: {name: shape}, ms}.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';

const [jsonPath, ...inputs] = process.argv.slice(2);
if (!jsonPath || inputs.length === 0) {
  console.error('usage: node tests/nanodet_tfjs.mjs MODEL_JSON INPUT.f32...');
  process.exit(2);
}

await tf.setBackend('cpu');
await tf.ready();
const json = JSON.parse(readFileSync(jsonPath, 'utf8'));
const weightSpecs = json.weightsManifest.flatMap((group) => group.weights);
const shards = json.weightsManifest.flatMap((group) => group.paths)
  .map((name) => readFileSync(join(dirname(jsonPath), name)));
const bin = Buffer.concat(shards);
const weightData = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
const model = await tf.loadGraphModel(tf.io.fromMemory({
  modelTopology: json.modelTopology,
  weightSpecs,
  weightData,
  format: json.format,
  generatedBy: json.generatedBy,
  convertedBy: json.convertedBy,
  signature: json.signature,
}));

const [inputInfo] = Object.values(json.signature.inputs);
const shape = inputInfo.tensorShape.dim.map((d) => Number(d.size));
const names = Object.keys(json.signature.outputs).map((name) => name.replace(/:0$/, ''));

for (const input of inputs) {
  const bytes = readFileSync(input);
  const values = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const start = Date.now();
  const x = tf.tensor(values, shape, 'float32');
  const results = model.execute(x, names);
  const outputs = {};
  for (let i = 0; i < names.length; i++) {
    const data = await results[i].data();
    writeFileSync(`${input}.${names[i]}.f32`, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    outputs[names[i]] = results[i].shape;
  }
  tf.dispose([x, ...results]);
  console.log(JSON.stringify({ input, outputs, ms: Date.now() - start }));
}
