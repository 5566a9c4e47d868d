// Runs a kdeploy web bundle with transformers.js in Node (onnxruntime-node), one text per call.
//   node node_check.mjs BUNDLE_DIR TEXTS.json OUT.json
// TEXTS.json: ["text", ...]; OUT.json: {"runtime", "versions", "results": [{"probabilities": {label: p}, "ms"}]}
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pipeline, env } from '@huggingface/transformers';

const [bundle, textsFile, outFile] = process.argv.slice(2);
env.allowRemoteModels = false;  // offline: the bundle folder only
env.localModelPath = path.resolve(bundle) + path.sep;
const classify = await pipeline('text-classification', 'model');
const texts = JSON.parse(readFileSync(textsFile, 'utf8'));
for (const t of texts.slice(0, 10)) await classify(t, { top_k: null });  // warm-up
const results = [];
for (const t of texts) {
  const t0 = performance.now();
  const scores = await classify(t, { top_k: null });
  const ms = performance.now() - t0;
  results.push({ probabilities: Object.fromEntries(scores.map(s => [s.label, s.score])), ms });
}
writeFileSync(outFile, JSON.stringify({ runtime: 'node', versions: { node: process.version, onnxruntime: env.backends?.onnx?.versions?.node },
                                        results }));
