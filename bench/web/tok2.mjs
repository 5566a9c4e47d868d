import { AutoTokenizer, env } from '@huggingface/transformers';
env.allowRemoteModels = false; env.localModelPath = process.argv[2];
const tok = await AutoTokenizer.from_pretrained('model');
const e = tok("word ".repeat(300), { truncation: true, padding: true });
console.log(e.input_ids.tolist()[0].slice(-3));
const g = tok("word ".repeat(300), { truncation: true, max_length: 128 });
console.log(g.input_ids.tolist()[0].slice(-3), g.input_ids.dims);
