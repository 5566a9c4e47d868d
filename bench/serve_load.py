"""`kdeploy serve` under load, against the one-request-one-call server a user writes first.

    python bench/serve_load.py --bundle runs/demo/bundle --name serve_load_demo

One script, one run, servers one at a time on loopback (never two at once): each is started
in a subprocess, warmed, loaded by a bounded asyncio client (aiohttp; a fixed number of
requests at each concurrency, one real test sentence per request), scraped and stopped.
  - baseline: a plain Starlette endpoint calling `Predictor.predict([text])` per request,
    served by uvicorn, in both forms a user writes (an `async def` that runs the model on the
    event loop, and a `def` that Starlette runs in its thread pool); the faster one is the peer;
  - kdeploy serve, 1 replica (every core), and 2 replicas (one thread each).
Also: answers under load against single `Predictor.predict` calls for 1,000 test sentences
(byte-identical JSON floats), and the batch-size histogram from /metrics during the load.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def baseline_app(bundle: str, threads: int, threaded: bool):
    """What a user writes first: one request, one model call."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from kdeploy.edge import Predictor

    predictor = Predictor(bundle, threads=threads)

    def answer(body: dict) -> JSONResponse:
        r = predictor.predict([body["inputs"]])[0]
        return JSONResponse(sorted(({"label": k, "score": v} for k, v in r["probabilities"].items()),
                                   key=lambda d: -d["score"]))

    if threaded:
        async def predict(request: Request):  # the model call in Starlette's thread pool
            from starlette.concurrency import run_in_threadpool
            return await run_in_threadpool(answer, await request.json())
    else:
        async def predict(request: Request):  # the model call on the event loop
            return answer(await request.json())

    async def health(request: Request):
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health)])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, limit_s: float = 180) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not become healthy in {limit_s} s")


def start(kind: str, bundle: str, port: int, replicas: int = 1, threads: int = 2, extra: str = "") -> subprocess.Popen:
    if kind.startswith("baseline"):
        cmd = [sys.executable, __file__, "--baseline-server", bundle, "--port", str(port), "--threads", str(threads)] \
            + (["--threaded"] if kind == "baseline-threadpool" else [])
    else:  # "kdeploy serve" (HAProxy ingress when installed) or "kdeploy serve (python ingress)"
        cmd = [sys.executable, "-m", "kdeploy", "serve", bundle, "--port", str(port), "--replicas", str(replicas),
               "--threads", str(threads), *(["--ingress", "python"] if "python" in kind else []), *extra.split()]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


async def load(url: str, texts: list[str], concurrency: int, requests: int, seed: int = 0,
               metrics_at: float | None = None, headers: dict | None = None, each_once: bool = False) -> dict:
    """`requests` POSTs of one text each (random test sentences, or with `each_once` every text
    once, shuffled), `concurrency` in flight at a time; latency per request."""
    import aiohttp

    rng = random.Random(seed)
    order = rng.sample(range(len(texts)), len(texts)) if each_once else \
        [rng.randrange(len(texts)) for _ in range(requests)]
    requests = len(order)
    latencies, codes, answers, scraped = [], {}, {}, {}
    queue = iter(range(requests))
    conn = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        async def worker():
            for n in queue:
                t0 = time.perf_counter()
                try:
                    async with session.post(f"{url}/predict", json={"inputs": texts[order[n]]},
                                            headers=headers) as r:
                        raw, status = await r.read(), r.status
                except aiohttp.ClientError as exc:  # a connection dropped (a fault test kills a replica)
                    raw, status = b"", f"error:{type(exc).__name__}"
                latencies.append(time.perf_counter() - t0)
                codes[status] = codes.get(status, 0) + 1
                if status == 200:
                    answers[order[n]] = raw

        async def scrape():
            await asyncio.sleep(metrics_at)
            async with session.get(f"{url}/metrics") as r:
                scraped["text"] = (await r.read()).decode()

        start_t = time.perf_counter()
        jobs = [worker() for _ in range(concurrency)] + ([scrape()] if metrics_at is not None else [])
        await asyncio.gather(*jobs)
        wall = time.perf_counter() - start_t
    ms = np.asarray(latencies) * 1000
    return {"concurrency": concurrency, "requests": requests, "codes": codes, "wall_s": round(wall, 3),
            "requests_per_s": round(requests / wall, 1), "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "answers": answers, "metrics": scraped.get("text")}


def batch_histogram(text: str | None) -> dict:
    if not text:
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith("kdeploy_batch_texts_bucket"):
            le = line.split('le="')[1].split('"')[0]
            out[le] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(("kdeploy_batch_texts_count", "kdeploy_batch_texts_sum")):
            out[line.split("{")[0].rsplit("_", 1)[1]] = float(line.rsplit(" ", 1)[1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle")
    ap.add_argument("--name", default="serve_load")
    ap.add_argument("--concurrency", default="1,8,32,128")
    ap.add_argument("--requests", type=int, default=2000, help="requests per concurrency level")
    ap.add_argument("--check", type=int, default=1000, help="test sentences checked against single calls")
    ap.add_argument("--servers", default="baseline-event-loop:1:2,baseline-threadpool:1:2,kdeploy:1:2,kdeploy:2:1,"
                                         "kdeploy-python:1:2",
                    help="KIND:REPLICAS:THREADS, comma-separated")
    ap.add_argument("--serve-flags", default="", help="more flags for kdeploy serve")
    ap.add_argument("--baseline-server", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    ap.add_argument("--threaded", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline_server:
        import uvicorn

        uvicorn.run(baseline_app(args.baseline_server, args.threads, args.threaded), host="127.0.0.1",
                    port=args.port, log_level="warning")
        return

    from kdeploy.data import DataConfig, load_task_data
    from kdeploy.edge import Predictor
    from kdeploy.environment import library_versions, machine

    texts = load_task_data(DataConfig(dataset="builtin:rotten_tomatoes")).texts("test")
    check = texts[:args.check]
    predictor = Predictor(args.bundle, threads=2)
    expected = {}
    for i, t in enumerate(check):  # what a single call answers, as the servers' JSON writes it
        r = predictor.predict([t])[0]
        expected[i] = [[k, v] for k, v in sorted(r["probabilities"].items(), key=lambda kv: -kv[1])]
    del predictor
    levels = [int(c) for c in args.concurrency.split(",")]
    servers = [({"kdeploy": "kdeploy serve", "kdeploy-python": "kdeploy serve (python ingress)"}.get(k, k), int(r), int(t))
               for k, r, t in (s.split(":") for s in args.servers.split(","))]
    rows, checks = [], {}
    for kind, replicas, threads in servers:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        t0 = time.perf_counter()
        proc = start(kind, args.bundle, port, replicas, threads, args.serve_flags)
        try:
            wait_healthy(url, proc)
            started = time.perf_counter() - t0
            asyncio.run(load(url, texts, 8, 200, seed=99))  # warm-up
            for c in levels:
                n = args.requests if c > 1 else max(200, args.requests // 4)
                r = asyncio.run(load(url, texts, c, n, seed=c, metrics_at=1.0 if kind.startswith("kdeploy") else None))
                r.pop("answers")
                r["batch_histogram_mid_run"] = batch_histogram(r.pop("metrics"))
                rows.append({"server": kind, "replicas": replicas, "threads": threads, "start_s": round(started, 1),
                             **r})
                print(json.dumps(rows[-1]), flush=True)
            if kind == "kdeploy serve" and replicas == 1:  # answers under load vs single calls
                r = asyncio.run(load(url, check, 32, len(check), seed=7, each_once=True))
                same = sum(json.loads(raw) == [{"label": k, "score": v} for k, v in expected[i]]
                           for i, raw in r["answers"].items())
                checks = {"sentences": len(r["answers"]), "identical": int(same), "codes": r["codes"]}
                with urllib.request.urlopen(f"{url}/metrics") as m:
                    checks["batch_histogram_end"] = batch_histogram(m.read().decode())
                print(json.dumps(checks), flush=True)
        finally:
            stop(proc)
    out = ROOT / "bench" / "results" / f"{args.name}.json"
    report = {"machine": machine(), "versions": library_versions(("kdeploy", "onnxruntime", "tokenizers", "numpy", "ray",
                                                                   "fastapi", "starlette", "uvicorn", "aiohttp")),
              "bundle": args.bundle, "command": "python " + " ".join(sys.argv[0:1] + sys.argv[1:]), "rows": rows,
              "answers_under_load": checks}
    out.write_text(json.dumps(report, indent=2))
    out.with_suffix(".md").write_text(markdown(report, args.name))
    print(f"wrote {out} and {out.with_suffix('.md')}")


def markdown(report: dict, name: str) -> str:
    """The table: each server at each concurrency, side by side."""
    lines = [f"# kdeploy serve under load: {name}", "", f"`{report['command']}`", "",
             f"Machine: {report['machine']}; versions: {report['versions']}. Bundle: `{report['bundle']}`. "
             "Servers one at a time on loopback, nothing else running; the client (aiohttp) shares the machine's "
             "cores with the server, as every loopback benchmark does.", "",
             "| server | replicas × threads | clients | requests | requests/s | p50 ms | p95 ms | p99 ms | codes | "
             "mean texts per engine batch (during the run) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        h = r.get("batch_histogram_mid_run") or {}
        mean = f"{h['sum'] / h['count']:.2f}" if h.get("count") else ""
        lines.append(f"| {r['server']} | {r['replicas']} × {r['threads']} | {r['concurrency']} | {r['requests']} | "
                     f"{r['requests_per_s']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['codes']} | {mean} |")
    c = report["answers_under_load"]
    if c:
        lines += ["", f"Answers under load (32 clients, each test sentence once): {c['identical']} of {c['sentences']} "
                  f"byte-identical to a single `Predictor.predict([text])` call; codes {c['codes']}.", "",
                  "Texts per engine batch over the whole kdeploy serve run (cumulative histogram from /metrics): "
                  + ", ".join(f"≤{k}: {int(v)}" for k, v in c["batch_histogram_end"].items()
                              if k not in ("count", "sum"))]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
