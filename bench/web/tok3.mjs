import { AutoTokenizer, pipeline, env } from '@huggingface/transformers';
env.allowRemoteModels = false; env.localModelPath = process.argv[2];
const tok = await AutoTokenizer.from_pretrained('model');
console.log(tok("[SEP] x [cls]").input_ids.tolist(), tok.pad_token_id, tok.pad_token);
console.log(tok(["a b c", "d"], {padding: true}).input_ids.tolist());
const c = await pipeline('text-classification', 'model');
console.log(await c("A gripping film", {top_k: null}));
