"""One replica of a served bundle: a Ray Serve deployment with a FastAPI ingress, whose texts
go through Ray's own batcher (`@serve.batch`) into the bundle's `Predictor`.

Each text of a request is one batch item, so a request of one text and a request of fifty
share batches alike; a batch closes at `max_batch_size` texts or `max_batch_tokens` padded
tokens (a `batch_size_fn`, the engine's own token budget), or after `batch_wait_ms`. The
answers equal a single-text `Predictor.predict` call because the bundle is batch-invariant
(calibrated int8, checked at package time); a bundle that is not (dynamic int8) is run a text
at a time unless `allow_batch_variance` says otherwise, so no client's answer depends on
another client's texts.

The replica never trusts a path: it gets the verified bundle's bytes from the driver, writes
them to a private folder and loads them pinned to the digest the driver checked, so a
restarted replica serves exactly what was verified, whatever has changed on disk since.
"""
# no `from __future__ import annotations`: FastAPI reads these signatures through Ray's wrappers,
# which cannot resolve string annotations (a `Request` would become a query parameter)
import asyncio
import hashlib
import hmac
import logging
import math
import os
import tempfile
import time
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from ray import serve

from .. import __version__
from ..errors import KdeployError
from .loopback import REPLICA_DIR_ENV
from .metrics import Counts
from .requests import (HttpError, embed_request, label_scores, openai_body, openai_request, parse_json, predict_request,
                       rerank_request, rerank_scores, vectors)

log = logging.getLogger("ray.serve")
FLUSH_S = 0.5
_EXAMPLE = {"application/json": {"schema": {"type": "object"}, "example": {"inputs": ["a gripping film", "dull"]}}}
_ANSWERS = {"application/json": {"schema": {"type": "array"}, "examples": {
    "classification": {"value": [{"label": "positive", "score": 0.97}, {"label": "negative", "score": 0.03}]},
    "multi-label": {"value": [{"label": "gratitude", "score": 0.91, "selected": True},
                              {"label": "joy", "score": 0.34, "selected": True},
                              {"label": "anger", "score": 0.02, "selected": False}]},
    "score": {"value": [{"score": 4.2}]},
    "token-classification": {"value": [{"entity_group": "PER", "score": 0.98, "word": "John Smith", "start": 0,
                                        "end": 10},
                                       {"entity_group": "LOC", "score": 0.95, "word": "Berlin", "start": 20,
                                        "end": 26}]}}}}
_EMBED = {"application/json": {"schema": {"type": "object"},
                               "example": {"inputs": ["a gripping film"], "normalize": True}}}
_EMBED_ANSWER = {"application/json": {"schema": {"type": "array"}, "example": [[0.021, -0.044, 0.013]]}}
_OPENAI = {"application/json": {"schema": {"type": "object"},
                                "example": {"input": ["a gripping film"], "model": "student", "encoding_format": "float"}}}
_RERANK = {"application/json": {"schema": {"type": "object"},
                                "example": {"query": "how do I reset my router", "texts": ["Hold the button."]}}}

web = FastAPI(title="kdeploy serve", version=__version__, docs_url=None, redoc_url=None, openapi_url=None,
              description="A kdeploy bundle behind Ray Serve. Routes follow text-embeddings-inference's shapes.")


@web.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """FastAPI's own refusals (no such route, wrong method) in the server's one error shape."""
    what = {404: f"no route {request.url.path}; see /docs", 405: f"{request.method} is not allowed on "
            f"{request.url.path}"}.get(exc.status_code, str(exc.detail))
    return JSONResponse({"error": what, "error_type": _error_type(exc.status_code)}, status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


def batch_size(items: list) -> int:
    """An engine batch's size in text slots: its count, or its padded tokens (count x longest)
    as a share of the token budget, whichever is larger. Each item is (example, tokens,
    slots per token)."""
    longest = max(item[1] for item in items)
    return max(len(items), math.ceil(len(items) * longest * items[0][2]))


class BundleServer:
    """The state of one replica: the predictor, its limits and its counts."""

    def __init__(self, name: str, files: dict[str, bytes], digest: str, options: dict, hub, key_sha256: str | None):
        from ..edge import Predictor

        self.name, self.options, self.hub, self.key_sha256 = name, options, hub, key_sha256
        # a local instance's private folder (removed whole at stop, even when Ray kills this replica
        # without running finalisers); the system's temporary folder on a cluster
        self._dir = tempfile.TemporaryDirectory(prefix="kdeploy-serve-", dir=os.environ.get(REPLICA_DIR_ENV))
        folder = Path(self._dir.name) / "bundle"
        for rel, raw in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(raw)
        self.predictor = Predictor(folder, threads=options["threads"], expected_digest=digest,
                                   spin_wait=False)  # the proxy shares these cores
        self.pairs = self.predictor.manifest.pairs
        self.width = int((self.predictor.manifest.pooling or {}).get("dimension") or 0)  # an embedder's
        self.batching = options["batching"]
        self.slots_per_token = options["max_batch_size"] / options["max_batch_tokens"]
        self._classify.set_max_batch_size(options["max_batch_size"])
        self._classify.set_batch_wait_timeout_s(options["batch_wait_ms"] / 1000)
        self._alone = asyncio.Lock()  # a batch-variant bundle: one request's texts at a time
        self.counts = Counts()
        self._flusher = None
        self.draining = False  # set by the hub when the server stops: new requests get 503
        self.replica = serve.get_replica_context().replica_id.unique_id

    # ---- the model ----------------------------------------------------------------------

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005, batch_size_fn=batch_size)
    async def _classify(self, items: list) -> list[dict]:
        self.counts.batches.append(len(items))
        return await asyncio.to_thread(self.predictor.predict, [item[0] for item in items])

    async def _results(self, examples: list) -> list[dict]:
        """One result per example, as a single-text `Predictor.predict` call gives it."""
        self.counts.pending += len(examples)
        try:
            if not self.batching:
                async with self._alone:
                    self.counts.batches.append(1)
                    return await asyncio.to_thread(self.predictor.predict, examples, 1)
            cap = self.predictor.max_length
            lengths = [min(len(e.ids), cap) for e in self.predictor._encode(examples)]
            return list(await asyncio.gather(*(self._classify((ex, max(n, 1), self.slots_per_token))
                                               for ex, n in zip(examples, lengths))))
        finally:
            self.counts.pending -= len(examples)
            self.counts.texts += len(examples)

    # ---- the request's life --------------------------------------------------------------

    def _authorised(self, request: Request) -> None:
        if self.key_sha256 is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        given = hashlib.sha256(token.strip().encode("utf-8", "replace")).hexdigest()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given, self.key_sha256):
            raise HttpError(401, "missing or wrong API key; send the header Authorization: Bearer <key>",
                            {"WWW-Authenticate": "Bearer"})

    async def _body(self, request: Request) -> dict:
        cap = self.options["max_request_bytes"]
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            raise HttpError(413, f"the body is {int(declared)} bytes; this server takes at most {cap} per request")
        if "json" not in request.headers.get("content-type", "application/json"):
            raise HttpError(415, f"send the body as application/json, not {request.headers['content-type']}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise HttpError(413, f"the body is over {cap} bytes; this server takes at most {cap} per request")
            chunks.append(chunk)
        return parse_json(b"".join(chunks))

    def _route(self, route: str) -> None:
        """A route this bundle's task does not answer: one line naming the ones it does."""
        if route not in self.predictor.kind.routes:
            raise HttpError(422, f"a {self.predictor.kind.name} bundle answers {', '.join(self.predictor.kind.routes)}, "
                                 f"not {route}")

    def _room(self, n: int) -> None:
        if self.counts.pending + n > self.options["max_pending_texts"]:
            raise HttpError(429, f"the server is busy ({self.counts.pending} texts waiting); retry shortly",
                            {"Retry-After": "1"})

    async def _answer(self, request: Request, route: str, work, authorise: bool = True) -> Response:
        start = time.perf_counter()
        self.counts.inflight += 1
        try:
            if self.draining:
                raise HttpError(503, "the server is stopping; retry on another replica or shortly",
                                {"Retry-After": "1"})
            if authorise:
                self._authorised(request)
            response = await work()
        except HttpError as exc:
            response = JSONResponse({"error": exc.message, "error_type": _error_type(exc.status)},
                                    status_code=exc.status, headers=exc.headers)
        except KdeployError as exc:  # the predictor's own refusal of an input
            response = JSONResponse({"error": str(exc), "error_type": "Validation"}, status_code=422)
        except asyncio.CancelledError:  # the client went away: nothing to answer, nothing to count as ours
            self.counts.requests[(route, 499)] += 1
            raise
        except Exception as exc:  # a fault of ours, never of the input: logged, and said in one line
            log.exception("kdeploy serve: %s failed", route)
            response = JSONResponse({"error": f"internal error ({type(exc).__name__}); see the server log",
                                     "error_type": "Backend"}, status_code=500)
        finally:
            self.counts.inflight -= 1
        self.counts.requests[(route, response.status_code)] += 1
        self.counts.latencies.append((route, time.perf_counter() - start))
        self._start_flushing()
        return response

    def _start_flushing(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            await self._flush_now()

    async def _flush_now(self) -> None:
        try:
            self.draining = await self.hub.record.remote(self.name, self.replica, self.counts.take()) or self.draining
        except Exception:  # the hub goes first at shutdown
            pass

    def check_health(self) -> None:
        """Ray calls this every few seconds; a replica whose session is gone is restarted."""
        if self.predictor.session is None:
            raise RuntimeError("the model session is gone")

    def __del__(self) -> None:
        try:
            self.hub.forget.remote(self.name, self.replica)
        except Exception:  # the hub may have gone first at shutdown
            pass


def _error_type(status: int) -> str:
    return {401: "Unauthorized", 413: "Validation", 415: "Validation", 422: "Validation",
            404: "NotFound", 405: "NotFound", 429: "Overloaded", 503: "Unavailable"}.get(status, "Backend")


@serve.deployment
@serve.ingress(web)
class BundleDeployment(BundleServer):
    @web.post("/predict", openapi_extra={"requestBody": {"content": _EXAMPLE, "required": True},
                                         "responses": {"200": {"content": _ANSWERS}}})
    async def predict(self, request: Request) -> Response:
        """Label scores per text (or per pair), best first, in text-embeddings-inference's shape: a
        classifier's softmax probabilities ([{"label", "score"}]); a multi-label tagger's sigmoid
        scores, each marked whether it reaches its threshold ([{"label", "score", "selected"}]); a
        score model's one score ([{"score"}]); an entity tagger's entities with character offsets
        ([{"entity_group", "score", "word", "start", "end"}], transformers' pipeline shape, aggregation
        "first"). One text gives one list; a list of texts, a list of them."""
        async def work():
            self._route("/predict")
            req = predict_request(await self._body(request), self.pairs, self.options["max_texts"])
            self._room(len(req.examples))
            scores = [label_scores(r) for r in await self._results(req.examples)]
            return JSONResponse(scores[0] if req.single else scores)
        return await self._answer(request, "predict", work)

    @web.post("/rerank", openapi_extra={"requestBody": {"content": _RERANK, "required": True}})
    async def rerank(self, request: Request) -> Response:
        """Passages by relevance to the query, best first (a sentence-pair bundle)."""
        async def work():
            self._route("/rerank")
            req = rerank_request(await self._body(request), self.pairs, self.options["max_texts"])
            self._room(len(req.texts))
            scores = rerank_scores(await self._results([(req.query, t) for t in req.texts]), self.predictor.labels)
            order = sorted(range(len(scores)), key=lambda i: -scores[i])
            return JSONResponse([{"index": i, "score": scores[i], **({"text": req.texts[i]} if req.return_text else {})}
                                 for i in order])
        return await self._answer(request, "rerank", work)

    @web.post("/embed", openapi_extra={"requestBody": {"content": _EMBED, "required": True},
                                       "responses": {"200": {"content": _EMBED_ANSWER}}})
    async def embed(self, request: Request) -> Response:
        """A sentence embedder's vectors in text-embeddings-inference's shape: one list of floats per
        text (a list of them, even for one text); `dimensions` keeps the first D, `normalize`
        (default true) L2-normalises them after that."""
        async def work():
            self._route("/embed")
            req = embed_request(await self._body(request), self.width, self.options["max_texts"])
            self._room(len(req.texts))
            return JSONResponse(vectors(await self._results(req.texts), req.normalize, req.dimensions))
        return await self._answer(request, "embed", work)

    @web.post("/v1/embeddings", openapi_extra={"requestBody": {"content": _OPENAI, "required": True}})
    async def openai_embeddings(self, request: Request) -> Response:
        """OpenAI's embeddings route (what the `openai` client calls): vectors as floats or base64,
        with the prompt's token count in `usage`. `model` is echoed; the bundle served answers."""
        async def work():
            self._route("/v1/embeddings")
            req = openai_request(await self._body(request), self.width, self.options["max_texts"])
            self._room(len(req.texts))
            tokens = sum(min(len(e.ids), self.predictor.max_length) for e in self.predictor._encode(req.texts))
            rows = vectors(await self._results(req.texts), req.normalize, req.dimensions)
            return JSONResponse(openai_body(rows, req.model or self.name, tokens, req.base64))
        return await self._answer(request, "embeddings", work)

    @web.get("/info")
    async def info(self, request: Request) -> Response:
        """What is served: the bundle, its labels and digest, the server's limits."""
        async def work():
            m, o = self.predictor.manifest, self.options
            return JSONResponse({
                "model_id": self.name, "model_type": self.predictor.kind.serve_type, "task": m.task,
                **({"thresholds": m.thresholds} if m.thresholds else {}),
                **({"pooling": m.pooling, "dimensions": self.width} if m.pooling else {}),
                "labels": self.predictor.labels, "pairs": m.pairs, "max_input_length": m.max_length,
                "bundle_digest": self.predictor.digest, "dtype": m.dtype, "batch_invariant": m.batch_invariant,
                "kdeploy_version": __version__, "max_batch_size": o["max_batch_size"],
                "max_batch_tokens": o["max_batch_tokens"], "batch_wait_ms": o["batch_wait_ms"],
                "micro_batching": self.batching, "max_client_batch_size": o["max_texts"],
                "max_request_bytes": o["max_request_bytes"], "threads": o["threads"], "replica": self.replica})
        return await self._answer(request, "info", work)

    @web.get("/health")
    async def health(self, request: Request) -> Response:
        """200 once this replica's model is loaded (a replica answers only after it is)."""
        async def work():
            return JSONResponse({"status": "ok"})
        return await self._answer(request, "health", work, authorise=False)

    @web.get("/metrics")
    async def metrics(self, request: Request) -> Response:
        """Prometheus text: requests by route and code, latency, texts per batch, texts waiting."""
        async def work():
            await self._flush_now()
            return Response(await self.hub.render.remote(), media_type="text/plain; version=0.0.4")
        return await self._answer(request, "metrics", work)

    @web.get("/openapi.json")
    async def openapi(self, request: Request) -> Response:
        async def work():
            return JSONResponse(web.openapi())
        return await self._answer(request, "openapi", work)

    @web.get("/docs")
    async def docs(self, request: Request) -> Response:
        async def work():
            prefix = request.scope.get("root_path", "")
            return HTMLResponse(get_swagger_ui_html(openapi_url=f"{prefix}/openapi.json", title="kdeploy serve").body)
        return await self._answer(request, "docs", work)
