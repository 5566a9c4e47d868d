"""The runtime kinds `kdeploy bench MODEL@KIND` measures, one module per runtime; each registers
its kinds in KINDS (base.py) when imported; importing this package registers them all."""
from .base import ALIASES, KINDS, Candidate, Context, missing_package  # noqa: F401
from . import onnx, openvino, pytorch, bundle  # noqa: F401,I001 - the order `kdeploy list` shows
