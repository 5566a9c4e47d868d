"""The runtime stage: ONNX Runtime sessions, inference over texts, accuracy and latency."""
