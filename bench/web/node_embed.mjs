// Runs a kdeploy embedder's web bundle with transformers.js in Node (onnxruntime-node), one text per call.
//   node node_embed.mjs BUNDLE_DIR TEXTS.json OUT.json
// OUT.json: {"runtime", "versions", "results": [{"embedding": [...], "ms"}]}
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pipeline, env } from '@huggingface/transformers';

const [bundle, textsFile, outFile] = process.argv.slice(2);
env.allowRemoteModels = false;  // offline: the bundle folder only
env.localModelPath = path.resolve(bundle) + path.sep;
const extract = await pipeline('feature-extraction', 'model');  // the graph pools and normalises: pooling "none"
const texts = JSON.parse(readFileSync(textsFile, 'utf8'));
const results = [];
for (const t of texts) {
  const t0 = performance.now();
  const vector = (await extract(t)).tolist()[0];
  results.push({ embedding: vector, ms: performance.now() - t0 });
}
writeFileSync(outFile, JSON.stringify({ runtime: 'node', versions: { node: process.version }, results }));
