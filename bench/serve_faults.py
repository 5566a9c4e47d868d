"""`kdeploy serve` against bad requests and faults: what each gets, and that the server stays up.

    python bench/serve_faults.py --bundle runs/demo/bundle --name serve_faults_demo

1. Bad requests (a server with --api-key): each one's status and message, /health after each;
   none may be a 500 or take the server down.
2. A replica killed under load (2 replicas): the requests that failed, and that every answer
   that came back equals a single `Predictor.predict` call (none answered wrongly).
3. Slow clients (bodies trickled a byte a second) and clients that hang up mid-request, beside
   normal traffic: the normal requests' codes and latency.
4. A bundle changed on disk after it was served: a restart refuses it (its digest pinned, or its
   checksums).
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from serve_load import free_port, load, stop, wait_healthy  # noqa: E402

KEY = "bench-key-0123456789"


def post(url: str, raw: bytes | None, headers: dict, method: str = "POST"):
    req = urllib.request.Request(url, data=raw, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def bad_requests() -> list[tuple[str, str, str, bytes | None, dict]]:
    j = {"content-type": "application/json", "authorization": f"Bearer {KEY}"}
    body = lambda obj: json.dumps(obj).encode()  # noqa: E731
    return [
        ("huge body (5 MB)", "POST", "/predict", body({"inputs": "a" * 5_000_000}), j),
        ("100,000 texts", "POST", "/predict", body({"inputs": ["a"] * 100_000}), j),
        ("1,025 texts (one over --max-texts)", "POST", "/predict", body({"inputs": ["a"] * 1025}), j),
        ("non-UTF-8 bytes", "POST", "/predict", b'{"inputs": "caf\xe9"}', j),
        ("not JSON", "POST", "/predict", b"inputs=a gripping film", j),
        ("truncated JSON", "POST", "/predict", b'{"inputs": ["a", "b"', j),
        ("empty body", "POST", "/predict", b"", j),
        ("a JSON list, not an object", "POST", "/predict", body(["a", "b"]), j),
        ("inputs a number", "POST", "/predict", body({"inputs": 42}), j),
        ("inputs an object", "POST", "/predict", body({"inputs": {"text": "a"}}), j),
        ("a null among the texts", "POST", "/predict", body({"inputs": ["a", None]}), j),
        ("missing key", "POST", "/predict", body({"truncate": True}), j),
        ("unknown key", "POST", "/predict", body({"text": "a"}), j),
        ("empty list", "POST", "/predict", body({"inputs": []}), j),
        ("NaN", "POST", "/predict", b'{"inputs": NaN}', j),
        ("duplicate key", "POST", "/predict", b'{"inputs": "a", "inputs": "b"}', j),
        ("lone surrogate", "POST", "/predict", b'{"inputs": "\\ud800"}', j),
        ("JSON nested 100,000 deep", "POST", "/predict", b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", j),
        ("pair to a one-text model", "POST", "/predict", body({"inputs": [["a", "b"]]}), j),
        ("rerank on a one-text model", "POST", "/rerank", body({"query": "q", "texts": ["a"]}), j),
        ("raw_scores asked", "POST", "/predict", body({"inputs": "a", "raw_scores": True}), j),
        ("form content type", "POST", "/predict", b"inputs=a",
         {**j, "content-type": "application/x-www-form-urlencoded"}),
        ("no API key", "POST", "/predict", body({"inputs": "a"}), {"content-type": "application/json"}),
        ("wrong API key", "POST", "/predict", body({"inputs": "a"}), {**j, "authorization": "Bearer wrong-key-xyz"}),
        ("API key in the wrong scheme", "POST", "/predict", body({"inputs": "a"}), {**j, "authorization": f"Basic {KEY}"}),
        ("GET on /predict", "GET", "/predict", None, j),
        ("unknown route", "POST", "/classify", body({"inputs": "a"}), j),
        ("a 900 KB text (truncated, answered)", "POST", "/predict", body({"inputs": "word " * 180_000}), j),
        ("control and zero-width characters (answered)", "POST", "/predict",
         body({"inputs": ["\x00\x07\u200b\u202e", "\ufeff"]}), j),
    ]


def run_bad(url: str) -> list[dict]:
    rows = []
    for what, method, route, raw, headers in bad_requests():
        code, answer = post(url + route, raw, headers, method)
        try:
            message = json.loads(answer).get("error") or json.loads(answer).get("detail")
        except (ValueError, AttributeError):
            message = answer[:120].decode("utf-8", "replace")
        health = post(url + "/health", None, {}, "GET")[0]
        rows.append({"request": what, "status": code, "message": str(message)[:150], "health_after": health})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def replica_pids() -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "ServeReplica:" in line]


async def kill_under_load(url: str, texts: list[str], expected: dict) -> dict:
    async def killer():
        await asyncio.sleep(1.0)
        pids = replica_pids()
        subprocess.run(["kill", "-9", str(pids[0])])
        return pids[0]

    result, killed = await asyncio.gather(load(url, texts, 8, 3000, seed=5), killer())
    wrong = sum(json.loads(raw) != [{"label": k, "score": v} for k, v in expected[i]]
                for i, raw in result["answers"].items())
    return {"killed_pid": killed, "requests": 3000, "codes": result["codes"], "answers_checked": len(result["answers"]),
            "answered_wrongly": int(wrong), "p99_ms": result["p99_ms"]}


async def slow_and_gone(url: str, texts: list[str]) -> dict:
    host, port = "127.0.0.1", int(url.rsplit(":", 1)[1])

    async def slow_client():  # a body promised and trickled a byte a second
        r, w = await asyncio.open_connection(host, port)
        w.write(f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n"
                f"Authorization: Bearer {KEY}\r\n\r\n".encode())
        for _ in range(15):
            w.write(b" ")
            await w.drain()
            await asyncio.sleep(1)
        w.close()

    async def hang_up():  # 100 texts sent, connection closed before the answer
        r, w = await asyncio.open_connection(host, port)
        raw = json.dumps({"inputs": texts[:100]}).encode()
        w.write(f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(raw)}\r\n"
                f"Authorization: Bearer {KEY}\r\n\r\n".encode() + raw)
        await w.drain()
        w.close()

    async def normal():
        await asyncio.sleep(1)
        return await load(url, texts, 4, 400, seed=11, headers={"authorization": f"Bearer {KEY}"})

    out = await asyncio.gather(*[slow_client() for _ in range(20)], *[hang_up() for _ in range(50)], normal())
    r = out[-1]
    return {"slow_clients": 20, "hung_up_clients": 50, "normal_requests": 400, "normal_codes": r["codes"],
            "normal_p50_ms": r["p50_ms"], "normal_p99_ms": r["p99_ms"]}


def changed_bundle(bundle: Path) -> list[dict]:
    """A served bundle altered on disk, then served again: a damaged model (its checksum fails),
    and a model replaced together with a rewritten manifest (only a pinned digest catches it)."""
    from kdeploy.edge import Predictor

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "bundle"
        shutil.copytree(bundle, copy)
        pin = Predictor(copy).digest
        model = copy / "model.onnx"
        raw = bytearray(model.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        model.write_bytes(bytes(raw))
        cases = [("model damaged", [])]
        for change, flags in cases + [("model replaced, manifest rewritten", []),
                                      ("model replaced, manifest rewritten", ["--digest", pin])]:
            if change.startswith("model replaced"):
                manifest = json.loads((copy / "bundle.json").read_text())
                manifest["files"]["model.onnx"]["sha256"] = hashlib.sha256(model.read_bytes()).hexdigest()
                (copy / "bundle.json").write_text(json.dumps(manifest, indent=2))
            port = free_port()
            p = subprocess.Popen([sys.executable, "-m", "kdeploy", "serve", str(copy), "--port", str(port), *flags],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
            try:
                out, err = p.communicate(timeout=60)
                served = False
            except subprocess.TimeoutExpired:  # it started serving: it took the altered bundle
                served = True
                stop(p)
                out, err = p.communicate()
            rows.append({"change": change, "flags": " ".join(flags[:1]) or "(none)", "served": served,
                         "exit": p.returncode, "stderr": err.strip().splitlines()[-1] if err.strip() else ""})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--name", default="serve_faults")
    args = ap.parse_args()
    from kdeploy.data import DataConfig, load_task_data
    from kdeploy.edge import Predictor
    from kdeploy.environment import library_versions, machine

    texts = load_task_data(DataConfig(dataset="builtin:rotten_tomatoes")).texts("test")
    p = Predictor(args.bundle, threads=2)
    expected = {i: [[k, v] for k, v in sorted(p.predict([t])[0]["probabilities"].items(), key=lambda kv: -kv[1])]
                for i, t in enumerate(texts)}
    del p
    report: dict = {"machine": machine(), "versions": library_versions(("kdeploy", "onnxruntime", "ray", "fastapi")),
                    "command": "python " + " ".join(sys.argv)}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "kdeploy", "serve", args.bundle, "--port", str(port),
                             "--replicas", "2", "--threads", "1", "--api-key", KEY],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_healthy(url, proc)
        report["bad_requests"] = run_bad(url)
        report["slow_and_gone"] = asyncio.run(slow_and_gone(url, texts))
        print(json.dumps(report["slow_and_gone"]), flush=True)
    finally:
        stop(proc)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "kdeploy", "serve", args.bundle, "--port", str(port),
                             "--replicas", "2", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_healthy(url, proc)
        asyncio.run(load(url, texts, 8, 200, seed=99))
        report["replica_killed"] = asyncio.run(kill_under_load(url, texts, expected))
        print(json.dumps(report["replica_killed"]), flush=True)
        time.sleep(5)
        report["replica_killed"]["health_after_5s"] = post(url + "/health", None, {}, "GET")[0]
    finally:
        stop(proc)
    report["changed_bundle"] = changed_bundle(Path(args.bundle))
    out = ROOT / "bench" / "results" / f"{args.name}.json"
    out.write_text(json.dumps(report, indent=2))
    out.with_suffix(".md").write_text(markdown(report, args.name))
    print(f"wrote {out} and {out.with_suffix('.md')}")


def markdown(report: dict, name: str) -> str:
    bad = report["bad_requests"]
    lines = [f"# kdeploy serve against bad requests and faults: {name}", "", f"`{report['command']}`", "",
             f"Machine: {report['machine']}; versions: {report['versions']}. Nothing else running.", "",
             f"## Bad requests ({len(bad)}; a server with --api-key, 2 replicas)", "",
             f"500s: {sum(r['status'] >= 500 for r in bad)}; /health after each: "
             f"{sorted({r['health_after'] for r in bad})}.", "",
             "| request | status | message |", "|---|---|---|"]
    lines += [f"| {r['request']} | {r['status']} | {r['message'].replace('|', '/')} |" for r in bad]
    k, sg = report["replica_killed"], report["slow_and_gone"]
    lines += ["", "## Faults", "",
              f"- **A replica killed (SIGKILL) under load**, 8 clients, {k['requests']} requests, 2 replicas: codes "
              f"{k['codes']}; {k['answered_wrongly']} of {k['answers_checked']} checked answers differ from a single "
              f"`Predictor.predict` call; p99 {k['p99_ms']} ms; /health 5 s later: {k.get('health_after_5s')}. "
              "Any that failed were in flight on the killed replica (the connection dropped, or the ingress answered "
              "for it); Ray restarted the replica from the verified bytes.",
              f"- **{sg['slow_clients']} slow clients** (a 200-byte body trickled a byte a second) and "
              f"**{sg['hung_up_clients']} clients that hung up** after sending 100 texts, beside "
              f"{sg['normal_requests']} normal requests (4 clients): normal codes {sg['normal_codes']}, p50 "
              f"{sg['normal_p50_ms']} ms, p99 {sg['normal_p99_ms']} ms.",
              "- **The bundle changed on disk, then served again**:"]
    lines += [f"  - {r['change']}, flags {r['flags']}: {'served' if r['served'] else 'refused'} (exit {r['exit']}) "
              f"{r['stderr']}" for r in report["changed_bundle"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
