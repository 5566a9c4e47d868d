"""`python -m kdeploy ARGS` as a fork of one interpreter that has already imported what the CLI's
commands import (torch, transformers, datasets, onnxruntime): the same entry point, exit code,
stdout and stderr as a fresh process, without paying ~4 s of imports per call. The server is a
separate clean process (no pytest state, no monkeypatching leaks into it); each call is a fresh
fork of it, so one call's state never reaches the next. `KDEPLOY_TEST_FORKSERVER=0` turns it off
(every call a plain subprocess).
"""
from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

# Imported once by the server, before any fork. Nothing here runs a computation (no thread pool starts).
PRELOAD = ("kdeploy.cli", "numpy", "torch", "transformers", "datasets", "onnxruntime", "tokenizers", "pandas",
           "onnx", "safetensors.torch", "kdeploy.distill.api", "kdeploy.export.api", "kdeploy.package.bundle",
           "kdeploy.runtime.bench", "kdeploy.edge")

SERVER = r'''
import atexit, importlib, json, os, runpy, sys, traceback
for name in sys.argv[1].split(","):
    try:
        importlib.import_module(name)
    except Exception:
        pass
requests, replies = sys.stdin.buffer, os.fdopen(os.dup(1), "w")
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
replies.write("ready\n"); replies.flush()
for line in requests:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setsid()
            os.chdir(job["cwd"])
            os.environ.clear(); os.environ.update(job["env"])
            for fd, path, mode in ((0, job["stdin"], os.O_RDONLY), (1, job["out"], os.O_WRONLY),
                                   (2, job["err"], os.O_WRONLY)):
                os.dup2(os.open(path, mode), fd)
            sys.stdin = open(0, "r", closefd=False)
            sys.stdout = open(1, "w", closefd=False)
            sys.stderr = open(2, "w", closefd=False)
            sys.argv = ["kdeploy", *job["args"]]
            try:
                runpy.run_module("kdeploy", run_name="__main__", alter_sys=True)
                code = 0
            except SystemExit as exc:
                if exc.code is None:
                    code = 0
                elif isinstance(exc.code, int):
                    code = exc.code
                else:
                    print(exc.code, file=sys.stderr); code = 1
            except BaseException:
                traceback.print_exc(); code = 1
            atexit._run_exitfuncs()
        finally:
            try:
                sys.stdout.flush(); sys.stderr.flush()
            finally:
                os._exit(code)
    replies.write(json.dumps({"pid": pid}) + "\n"); replies.flush()
    _, status = os.waitpid(pid, 0)
    replies.write(json.dumps({"code": os.waitstatus_to_exitcode(status)}) + "\n"); replies.flush()
'''


class ForkServer:
    def __init__(self):
        self.proc: subprocess.Popen | None = None
        self.env: dict | None = None

    def _start(self) -> None:
        self.env = dict(os.environ)
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, ",".join(PRELOAD)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=self.env, start_new_session=True,
                                     bufsize=0)  # unbuffered: select() sees every reply line
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError("the test fork server did not start")
        atexit.register(self.stop)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def usable(self, env: dict) -> bool:
        """Only where the call's environment differs from the server's in kdeploy's own variables (read
        at run time); a library variable may have been read at import."""
        if os.environ.get("KDEPLOY_TEST_FORKSERVER", "1") == "0" or sys.platform != "linux":
            return False
        base = self.env if self.env is not None else dict(os.environ)
        keys = set(base) | set(env)
        return all(base.get(k) == env.get(k) for k in keys if not k.startswith("KDEPLOY_"))

    def run(self, args: list[str], cwd: Path | None, stdin: bytes | None, env: dict,
            timeout: float) -> tuple[int, bytes, bytes]:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        with tempfile.TemporaryDirectory(prefix="kdeploy-fork-") as tmp:
            paths = {k: os.path.join(tmp, k) for k in ("stdin", "out", "err")}
            Path(paths["stdin"]).write_bytes(stdin or b"")
            Path(paths["out"]).touch()
            Path(paths["err"]).touch()
            job = {"args": list(args), "cwd": str(cwd or os.getcwd()), "env": env, **paths}
            self.proc.stdin.write((json.dumps(job) + "\n").encode())
            self.proc.stdin.flush()
            pid = json.loads(self.proc.stdout.readline())["pid"]
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            if not ready:
                os.killpg(pid, signal.SIGKILL)
                self.proc.stdout.readline()
                raise subprocess.TimeoutExpired(["kdeploy", *args], timeout)
            code = json.loads(self.proc.stdout.readline())["code"]
            return code, Path(paths["out"]).read_bytes(), Path(paths["err"]).read_bytes()


SERVER_INSTANCE = ForkServer()
