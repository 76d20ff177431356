"""Benchmark: two builds of MarketGate under the same paced newInstance load, taking turns.

This machine's speed drifts by tens of per cent within minutes, so two runs of
`bench.basic_calls` taken one after the other compare the machine as much as the code. Here
both builds run side by side: the baseline (a git revision, taken with `git archive`) and the
candidate (this checkout, as it is on disk), each one worker on its own SQLite file and
in-memory store, both pinned to the same CPU. They get the same paced newInstance load (a new
order per call, signed at send time, order queries to one local open-API stand-in) in short
phases, in turns (baseline, candidate, then candidate, baseline, and so on), so that both meet
the same machine. It prints every phase and, for each build, the median CPU per call and p99,
and in how many rounds the candidate's p99 was the lower. It asserts nothing: it prints.

Both builds run on this checkout's virtual environment: a baseline that needs other
dependencies cannot be compared this way.

    .venv/bin/python -m bench.compare_builds --baseline HEAD~1
"""

import argparse
import asyncio
import io
import secrets
import statistics
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench._harness import (
    REPO_ROOT,
    ServerProcess,
    cpu_seconds,
    free_port,
    marketgate_argv,
    start_server,
)
from bench.basic_calls import ORDER_QUERY_PATH, SLUG, marketgate_env, pin_cpus, start_open_api
from gateway.simulator.load import NewInstanceOrders, RequestFactory, answered, drive, load_client, new_instance_factory


@dataclass
class Build:
    """One build under test: its server, its orders, and what each of its phases measured."""

    name: str
    server: ServerProcess
    factory: RequestFactory
    next_index: int = 0
    cpu_ms_per_call: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    errors: int = 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare_builds", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--baseline", required=True, help="git revision of the baseline build (e.g. HEAD~1, main)")
    parser.add_argument("--rate", type=float, default=70.0, help="newInstance calls per second (default: 70)")
    parser.add_argument("--phase-seconds", type=float, default=8.0, help="seconds per phase (default: 8)")
    parser.add_argument("--rounds", type=int, default=10, help="phases per build (default: 10)")
    parser.add_argument("--concurrency", type=int, default=32, help="connections (default: 32)")
    parser.add_argument("--warmup", type=int, default=300, help="warm-up calls per build, back to back (default: 300)")
    args = parser.parse_args(argv)
    if not args.rate > 0 or not args.phase_seconds > 0 or args.rounds < 1:
        parser.error("--rate and --phase-seconds must be positive, --rounds at least 1")
    return args


def extract_revision(revision: str, into: Path) -> str:
    """Write the tree of `revision` into `into`; returns its short commit id."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", f"{revision}^{{commit}}"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=REPO_ROOT, check=True, capture_output=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return commit


async def phase(build: Build, args: argparse.Namespace, client: httpx.AsyncClient) -> str:
    """One paced phase on `build`; records it and returns its line."""
    count = round(args.rate * args.phase_seconds)
    before = cpu_seconds(build.server.pid)
    result = await drive(
        client,
        build.factory,
        concurrency=args.concurrency,
        count=count,
        check=answered(),
        first_index=build.next_index,
        rate=args.rate,
        duration_s=args.phase_seconds,
        timeout_s=args.phase_seconds + 30,
    )
    cpu_s = cpu_seconds(build.server.pid) - before
    build.next_index += count
    per_call = cpu_s * 1000 / result.ok if result.ok else float("nan")
    build.cpu_ms_per_call.append(per_call)
    build.p99_ms.append(result.p99_ms)
    build.errors += result.errors
    return (
        f"{build.name:<22} {per_call:6.2f} ms CPU per call, p50 {result.p50_ms:7.1f} ms, "
        f"p99 {result.p99_ms:7.1f} ms, {result.ok}/{count} ok"
    )


async def alternate(builds: tuple[Build, Build], args: argparse.Namespace) -> None:
    async with load_client(args.concurrency) as client:
        for build in builds:
            await drive(client, build.factory, concurrency=args.concurrency, count=args.warmup, check=answered())
            build.next_index = args.warmup
        for round_number in range(args.rounds):
            order = builds if round_number % 2 == 0 else builds[::-1]
            for build in order:
                print(f"round {round_number + 1:>2}  {await phase(build, args, client)}", flush=True)


def report(baseline: Build, candidate: Build, args: argparse.Namespace) -> None:
    print(f"\n{args.rounds} phases of {args.phase_seconds:.0f}s per build at {args.rate:.0f} newInstance/s")
    for build in (baseline, candidate):
        print(
            f"{build.name:<22} median {statistics.median(build.cpu_ms_per_call):6.2f} ms CPU per call, "
            f"median p99 {statistics.median(build.p99_ms):7.1f} ms (p99 {min(build.p99_ms):.0f}-"
            f"{max(build.p99_ms):.0f} ms), {build.errors} errors"
        )
    lower = sum(ours < theirs for ours, theirs in zip(candidate.p99_ms, baseline.p99_ms, strict=True))
    cpu_ratio = statistics.median(candidate.cpu_ms_per_call) / statistics.median(baseline.cpu_ms_per_call)
    p99_ratio = statistics.median(candidate.p99_ms) / statistics.median(baseline.p99_ms)
    print(
        f"candidate / baseline: CPU per call {cpu_ratio:.2f}, p99 {p99_ratio:.2f}; "
        f"the candidate's p99 was the lower in {lower} of {args.rounds} rounds"
    )


def run(args: argparse.Namespace, directory: Path) -> None:
    baseline_source = directory / "baseline-source"
    commit = extract_revision(args.baseline, baseline_source)
    open_api_port = free_port()
    servers: list[ServerProcess] = []
    try:
        open_api = start_open_api(open_api_port, directory)
        servers.append(open_api)
        builds = []
        for name, source in ((f"baseline {commit}", baseline_source), ("candidate (checkout)", REPO_ROOT)):
            data = directory / name.split()[0]
            data.mkdir()
            key, port = secrets.token_hex(16), free_port()
            env = marketgate_env(data, key=key, port=port, open_api_port=open_api_port, log_level="INFO")
            server = start_server(
                name.split()[0], marketgate_argv(port=port), port=port, env=env, log_dir=directory, source=source
            )
            servers.append(server)
            url = f"{server.base_url}/koogallery/{SLUG}"
            builds.append(Build(name, server, new_instance_factory(url, key.encode("ascii"), NewInstanceOrders())))
        open_api.wait_ready(ORDER_QUERY_PATH, timeout_s=30, ready_statuses=(401,))
        for build in builds:
            build.server.wait_ready("/readyz", timeout_s=60)
        pinned = pin_cpus(under_test=[build.server for build in builds], others=[open_api])
        print(f"baseline {commit} against this checkout, {pinned}; warm-up {args.warmup} calls each")
        baseline, candidate = builds
        asyncio.run(alternate((baseline, candidate), args))
        report(baseline, candidate, args)
    finally:
        for server in reversed(servers):
            server.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="marketgate-compare-") as directory:
        run(args, Path(directory))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
