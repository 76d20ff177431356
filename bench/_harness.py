"""Helpers shared by the benchmarks: ports, server subprocesses, the bare route, /proc readings."""

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.simulator.load import percentile

REPO_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
JSON_UTF8 = "application/json;charset=UTF-8"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


class ServerFailedError(RuntimeError):
    """A server subprocess exited, or did not become ready in time; the message ends with its log."""


@dataclass
class ServerProcess:
    """A server in a subprocess; its stdout and stderr go to `log_path`."""

    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    _log: IO[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def wait_ready(self, path: str, *, timeout_s: float, ready_statuses: Sequence[int] = (200,)) -> None:
        """Poll `path` until it answers one of `ready_statuses`; fail early if the process exits."""
        deadline = time.monotonic() + timeout_s
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise ServerFailedError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
                try:
                    if client.get(path).status_code in ready_statuses:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise ServerFailedError(f"{self.name} not ready after {timeout_s:.0f}s:\n{self.log_tail()}")

    def stop(self, *, grace_s: float = 10.0) -> int:
        """SIGINT (uvicorn's graceful stop), then SIGKILL after `grace_s`; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def start_server(
    name: str,
    argv: Sequence[str],
    *,
    port: int,
    env: Mapping[str, str],
    log_dir: Path,
    source: Path = REPO_ROOT,
) -> ServerProcess:
    """Start `argv` (a server that will listen on `port` on loopback) with `env` added to ours,
    importing MarketGate's packages from `source` (this checkout by default)."""
    log_path = log_dir / f"{name}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        list(argv),
        cwd=source,
        env={**os.environ, "PYTHONPATH": str(source), **env},
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return ServerProcess(name, process, f"http://{LOOPBACK}:{port}", log_path, log)


def uvicorn_argv(factory: str, *, port: int) -> list[str]:
    """uvicorn serving the app that `factory` ("module:function") makes, as `marketgate serve` does."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        factory,
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def marketgate_argv(*, port: int) -> list[str]:
    """`marketgate serve` on loopback: the console script beside our interpreter, else the module."""
    script = Path(sys.executable).parent / "marketgate"
    command = [str(script)] if script.exists() else [sys.executable, "-c", "from gateway.cli import main; main()"]
    return [*command, "serve", "--host", LOOPBACK, "--port", str(port)]


# The bare route ----------------------------------------------------------------------------


def _answer(fields: Mapping[str, Any]) -> Response:
    body = {"resultCode": "000000", "resultMsg": "success.", **fields}
    content = json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return Response(content, media_type=JSON_UTF8)


async def _bare_call(request: Request) -> Response:
    """Read the body, and answer what MarketGate answers a successful call of that activity."""
    call = json.loads(await request.body())
    activity = call.get("activity")
    if activity == "newInstance":
        return _answer({"instanceId": call["businessId"]})
    if activity == "queryInstance":
        base = f"{request.base_url}apps/{request.path_params['slug']}/w/"
        info = [
            {
                "instanceId": instance_id,
                "appInfo": {
                    "frontEndUrl": base + instance_id,
                    "adminUrl": f"{base}{instance_id}/admin",
                    "userName": "admin-00000000",
                },
            }
            for instance_id in call["instanceId"].split(",")
        ]
        return _answer({"info": info})
    return _answer({})


async def _healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


def create_bare_app() -> Starlette:
    """The bare route: `POST /koogallery/{slug}` answers like MarketGate, but checks and stores nothing."""
    return Starlette(
        routes=[
            Route("/healthz", _healthz),
            Route("/koogallery/{slug}", _bare_call, methods=["POST"]),
        ]
    )


# Readings from /proc -----------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    """Resident memory of process `pid` in MiB (NaN if it cannot be read)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid` (all its threads), in seconds."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return float("nan")
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def quantile(values: Iterable[float], fraction: float) -> float:
    """The nearest-rank quantile of unsorted `values` (0.5: p50), as the load driver counts it."""
    return percentile(sorted(values), fraction * 100)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def run_in_workdir(
    run: Callable[[argparse.Namespace, Path], Coroutine[Any, Any, int]], args: argparse.Namespace, *, prefix: str
) -> int:
    """`run(args, workdir)` in a fresh temporary folder, removed afterwards unless `args.keep`."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        return asyncio.run(run(args, workdir))
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
