"""Model I/O, below every stage: load a model, tokenizer or record from a folder, run
length-bucketed batched inference in PyTorch or ONNX Runtime, pick a graph's inputs, and
measure sizes. Stages share these instead of reaching into each other.

Torch-free modules: record, batching, inputs, onnx_session, sizes. Torch: loading,
small_models, torch_infer.
"""
