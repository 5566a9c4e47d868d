"""The export stage: PyTorch → ONNX, parity-checked, optionally optimised and quantised."""
