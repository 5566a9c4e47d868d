"""Serving bundles on Ray Serve (`pip install 'kdeploy[serve]'`): micro-batched on the engine's
own batcher, bounded, loopback unless told, one application per bundle.

    from kdeploy.serve import ServeSettings, serve_bundles
    server = serve_bundles(["runs/demo/bundle"], ServeSettings(port=8000))
    ...                      # POST http://127.0.0.1:8000/predict {"inputs": ["a gripping film"]}
    server.stop()            # in-flight requests finish first
"""
from .api import Server, serve_bundles
from .config import ServeSettings

__all__ = ["ServeSettings", "Server", "serve_bundles"]
