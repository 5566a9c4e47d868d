"""Keep a local Ray instance on loopback, in a private folder, and leave nothing behind.

Left alone, a local `ray.init` on Linux binds its GCS, raylet, agents and workers to the
machine's network address; Ray Serve's HAProxy ingress puts its statistics page on `*:8404` and
its Prometheus frontend on `*:9101` (fixed ports: a second server on the machine cannot start),
its admin socket at `/tmp/haproxy-serve/<node>/admin.sock` with mode 666 and `level admin`
(any local user can disable or redirect the backends), and each replica's inter-deployment
gRPC server on `[::]`. None of that is needed by a server on 127.0.0.1. This module is the one
place that knows it:

* `ENABLE_RAY_CLUSTER` off (Ray's own switch, on by default only on Linux) makes the node
  address 127.0.0.1 for every Ray process;
* HAProxy's and Ray's files go to a private 0700 folder removed at stop; its statistics page is
  off, its Prometheus frontend on loopback at a free port, its admin socket mode 600;
* `setup_worker` (Ray's `worker_process_setup_hook`, run in every worker before it does anything)
  applies the HAProxy template and replica-gRPC changes inside Ray's processes;
* `listening` lists the TCP sockets of a process tree, so the server checks itself after start
  (and the tests check the server).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import tempfile
from pathlib import Path

from ..errors import KdeployError

HOOK = "kdeploy.serve.loopback.setup_worker"
PREFIX = "kdeploy-"
OWNER = "owner.json"  # marks a folder as a local instance's, with the pid of the server that made it
REPLICA_DIR_ENV = "KDEPLOY_SERVE_DIR"
LOOPBACK_ADDRESSES = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalInstance:
    """The private folder and environment of one local Ray instance, and its clean stop."""

    def __init__(self) -> None:
        sweep_stale()
        self.folder = Path(tempfile.mkdtemp(prefix=PREFIX, dir=_base()))  # 0700: only this user
        (self.folder / OWNER).write_text(json.dumps({"pid": os.getpid(), "kdeploy": "serve"}))
        haproxy = self.folder / "h"
        self.env = {
            REPLICA_DIR_ENV: str(self.folder),  # the replicas' copies of the bundles go here too
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(haproxy / "haproxy.cfg"),
            "RAY_SERVE_HAPROXY_SOCKET_PATH": str(haproxy / "admin.sock"),
            "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(haproxy),
            "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(haproxy / "server-state"),
            "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(haproxy / "metrics.sock"),
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
            "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),  # the page itself is removed (setup_worker)
        }
        self.pids: set[int] = set()

    @property
    def ray_temp_dir(self) -> str:
        return str(self.folder / "ray")

    def apply_here(self) -> None:
        """This process's side: the environment Ray's processes inherit, and Ray's switch (read
        when `ray` was first imported, so set on the module too)."""
        os.environ.update(self.env)
        setup_worker()

    def remember_children(self) -> None:
        """The processes of this instance started so far: Ray's daemons (this process's children
        that name the instance's folder on their command line: gcs_server, raylet, agents) and all
        they started (workers, HAProxy). Nothing else this process runs: an application that
        calls `serve_bundles` keeps its own subprocesses."""
        try:
            import psutil
        except ModuleNotFoundError:
            return
        mark = str(self.folder)
        for child in psutil.Process().children():
            try:
                if any(mark in arg for arg in child.cmdline()):
                    self.pids.update([child.pid, *(p.pid for p in child.children(recursive=True))])
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass

    def clean_up(self, grace_s: float = 5.0) -> list[str]:
        """After `ray.shutdown()`: any process of this instance still running is killed (Ray's
        agents ignore SIGTERM; HAProxy once survived holding the port), then the folder goes.
        Returns what had to be killed, for a note."""
        killed: list[str] = []
        try:
            import psutil
        except ModuleNotFoundError:
            psutil = None
        if psutil is not None and self.pids:
            procs = []
            for pid in self.pids:
                try:
                    procs.append(psutil.Process(pid))
                except psutil.NoSuchProcess:
                    pass
            _, alive = psutil.wait_procs(procs, timeout=grace_s)
            for p in alive:
                try:
                    killed.append(p.name())
                    p.send_signal(signal.SIGKILL)
                except psutil.NoSuchProcess:
                    pass
            psutil.wait_procs(alive, timeout=grace_s)
        shutil.rmtree(self.folder, ignore_errors=True)
        return killed


# HAProxy's socket paths get Ray's 56-character node id inserted and may be 97 characters at most
_ROOM = 97 - len("/" + PREFIX + "x" * 8 + "/h/" + "0" * 56 + "/metrics.sock")
SHORT_BASE = "/tmp"


def _base() -> str:
    """The temporary folder, or /tmp where its path is too long for HAProxy's sockets (a pytest
    or macOS TMPDIR is): refused only when neither fits."""
    for base in (tempfile.gettempdir(), SHORT_BASE):
        if len(base) <= _ROOM and os.path.isdir(base) and os.access(base, os.W_OK | os.X_OK):
            return base
    raise KdeployError(f"the temporary folder {tempfile.gettempdir()} has too long a path for HAProxy's sockets "
                       f"(and {SHORT_BASE} cannot be used); set TMPDIR to a shorter one")


def sweep_stale() -> list[str]:
    """What a server killed outright (SIGKILL, a crash) left: the folders of local instances whose
    server is gone (only folders kdeploy marked as its own, of this user), and any process still
    running from one (HAProxy outlives a killed Ray). Run before each local start."""
    import shutil

    swept = []
    for folder in [f for base in dict.fromkeys([tempfile.gettempdir(), SHORT_BASE]) for f in Path(base).glob(PREFIX + "*")]:
        try:
            owner = json.loads((folder / OWNER).read_text())
            if folder.stat().st_uid != os.getuid() or owner.get("kdeploy") != "serve" or _alive(int(owner["pid"])):
                continue
        except (OSError, ValueError, KeyError, TypeError):
            continue
        _kill_processes_of(folder)
        shutil.rmtree(folder, ignore_errors=True)
        swept.append(str(folder))
    return swept


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_processes_of(folder: Path) -> None:
    try:
        import psutil
    except ModuleNotFoundError:
        return
    mark = str(folder) + os.sep
    for p in psutil.process_iter(["cmdline", "uids"]):
        try:
            if p.info["uids"] and p.info["uids"].real == os.getuid() and \
                    any(mark in arg for arg in (p.info["cmdline"] or [])):
                p.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


def setup_worker() -> None:
    """Run in every Ray worker of a local instance (and in the driver): Ray's cluster switch off,
    HAProxy's template on loopback with a private admin socket and no statistics page, and the
    replicas' inter-deployment gRPC server on loopback."""
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        from ray.serve._private import haproxy, haproxy_templates
    except ImportError:  # no HAProxy ingress in this Ray
        pass
    else:
        patched = loopback_template(haproxy_templates.HAPROXY_CONFIG_TEMPLATE)
        haproxy_templates.HAPROXY_CONFIG_TEMPLATE = haproxy.HAPROXY_CONFIG_TEMPLATE = patched
    try:
        from ray.serve._private import replica
    except ImportError:
        return
    bind = replica.add_port_to_grpc_server
    if not getattr(bind, "kdeploy_loopback", False):
        def on_loopback(server, address: str):
            host, _, port = address.rpartition(":")
            return bind(server, f"127.0.0.1:{port}" if host in ("[::]", "0.0.0.0", "") else address)

        on_loopback.kdeploy_loopback = True
        replica.add_port_to_grpc_server = on_loopback


def loopback_template(template: str) -> str:
    """HAProxy's configuration template with every bind on loopback, the admin socket for its
    user only, and the unauthenticated statistics page removed."""
    out = template.replace("mode 666 level admin", "mode 600 level admin")
    out = re.sub(r"(?m)^(\s*bind )(?:\*|0\.0\.0\.0|\[::\])?:", r"\g<1>127.0.0.1:", out)
    out = re.sub(r"(?ms)^listen stats\n(?:[ \t]+.*\n?)*", "", out)
    return out


def listening(root_pid: int | None = None) -> list[tuple[str, int, str]]:
    """(address, port, process name) of every TCP socket listening in the process tree of
    `root_pid` (this process by default)."""
    import psutil

    root = psutil.Process(root_pid or os.getpid())
    procs = [root, *root.children(recursive=True)]
    out = []
    for p in procs:
        try:
            conns = p.net_connections(kind="tcp")
            name = p.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        out += [(c.laddr.ip, c.laddr.port, name) for c in conns if c.status == psutil.CONN_LISTEN]
    return out


def beyond_loopback(sockets: list[tuple[str, int, str]], allowed: set[tuple[str, int]] = frozenset()) \
        -> list[tuple[str, int, str]]:
    return [s for s in sockets if s[0] not in LOOPBACK_ADDRESSES and (s[0], s[1]) not in allowed]
