import { AutoTokenizer, env } from '@huggingface/transformers';
env.allowRemoteModels = false; env.localModelPath = process.argv[2];
const tok = await AutoTokenizer.from_pretrained('model');
const e = tok("word ".repeat(300), { truncation: true, padding: true });
console.log(e.input_ids.dims, tok.model_max_length);
const f = tok("[SEP] x", { truncation: true });
console.log(f.input_ids.tolist());
