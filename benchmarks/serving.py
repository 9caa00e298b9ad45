"""Online scoring over loopback: ``trainflow serve`` in its own process, driven by an async httpx client from
this one, one Adult row a request, at 1, 8 and 64 concurrent clients; p50/p99 latency, rows/s and errors, beside
the same row scored in-process (the serving variant alone, and the service's own path without HTTP). During the
last level the production alias moves to another version: the service swaps it in, and the errors column says
whether any request was dropped.

    python -m benchmarks.serving [--requests 1000] [--concurrency 1,8,64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _train(tmp: Path, registry: str, seed: int) -> dict:
    from flows.training import TrainingSettings, training

    return training(TrainingSettings.model_validate({
        "dataset": "adult", "preset": "fast", "seed": seed, "artifacts_root": str(tmp / "artifacts"),
        "registry": {"registry_url": registry}, "compress": {"enabled": "on"},
        "evaluate": {"cv_folds": 0, "permutation_repeats": 0}}))


def _in_process(registry: str, row: pd.DataFrame, repeats: int = 300) -> tuple[float, float, str]:
    """p50 ms of the serving variant's predict_proba on a one-row frame, and of predict_records on the row as
    JSON gives it (the service's path)."""
    from tasks.predict import predict_records, scoring_model
    from trainflow.features import as_model_input
    from trainflow.schema import load_schema

    schema = load_schema("adult")
    pipeline, scorer, scored_by, threshold = scoring_model(registry, "adult", 1, "serving")
    model = scorer if scorer is not None else pipeline
    x = as_model_input(row, schema)
    body = [{k: (None if pd.isna(v) else v) for k, v in row.iloc[0].to_dict().items()}]

    def p50(call) -> float:  # noqa: ANN001
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1000

    return (p50(lambda: model.predict_proba(x)),
            p50(lambda: predict_records(pipeline, schema, body, scorer=scorer, threshold=threshold)), scored_by)


async def _drive(url: str, body: dict, requests: int, concurrency: int) -> tuple[list[float], int, float]:
    """Each client its own connection and httpx client: one client sharing a pool of 64 connections spent more
    CPU choosing a connection than the service spent answering."""
    latencies: list[float] = []
    errors = 0
    left = iter(range(requests))

    async def client() -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=1)) as http:
            for _ in left:
                start = time.perf_counter()
                try:
                    answer = await http.post("/predict", json=body)
                    ok = answer.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - start)
                errors += not ok

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests at each concurrency level")
    parser.add_argument("--concurrency", default="1,8,64", help="concurrent clients, comma-separated")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="trainflow-serving-"))
    registry = f"sqlite:///{tmp / 'registry.db'}"
    runs = [_train(tmp, registry, seed) for seed in (1, 2)]  # v1 serves; v2 is promoted during the last level
    rows = pd.read_parquet(Path(runs[0]["run_dir"]) / "split" / "test.parquet").drop(columns=["income"])
    row = rows.head(1)
    bare_p50, path_p50, scored_by = _in_process(registry, row)
    from deployments.ui import free_port, wait_healthy
    from trainflow.registry import Registry

    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).with_name("trainflow")), "serve", "adult", "--port",
                               str(port), "--registry-url", registry, "--refresh-seconds", "1"], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    table = []
    try:
        wait_healthy(url, timeout=120)
        body = {k: (None if pd.isna(v) else v) for k, v in row.iloc[0].to_dict().items()}
        asyncio.run(_drive(url, body, 50, 1))  # warm: the first requests load what the model needs
        for level in levels:
            cpu_before, client_before = _cpu_seconds(server.pid), time.process_time()
            promote = level == levels[-1]
            if promote:
                registry_handle = Registry(registry)

                async def promoted() -> tuple[list[float], int, float]:
                    task = asyncio.create_task(_drive(url, body, args.requests, level))
                    await asyncio.sleep(0.5)
                    registry_handle.set_alias("adult", "production", 2, reason="benchmark")
                    return await task

                latencies, errors, wall = asyncio.run(promoted())
                version = httpx.get(f"{url}/health", timeout=30).json()["version"]
                registry_handle.close()
            else:
                latencies, errors, wall = asyncio.run(_drive(url, body, args.requests, level))
                version = None
            cpu, client_cpu = _cpu_seconds(server.pid) - cpu_before, time.process_time() - client_before
            ordered = sorted(latencies)
            table.append({"clients": level, "requests": len(latencies), "errors": errors,
                          "p50 ms": statistics.median(ordered) * 1000,
                          "p99 ms": ordered[int(0.99 * (len(ordered) - 1))] * 1000,
                          "rows/s": len(latencies) / wall, "wall s": wall, "server cpu s": cpu,
                          "client cpu s": client_cpu,
                          "p50 / in-process": statistics.median(ordered) * 1000 / bare_p50,
                          "promoted to": "" if version is None else f"v{version}"})
    finally:
        server.terminate()
        server.wait(30)
    print(f"Adult, one row a request, trainflow serve ({scored_by}) on 127.0.0.1, an async httpx client in another "
          f"process; {os.cpu_count()} cores")
    print(f"in-process, one row: {scored_by} predict_proba p50 {bare_p50:.2f} ms; the service's path without HTTP "
          f"(predict_records) p50 {path_p50:.2f} ms")
    print(pd.DataFrame(table).to_string(index=False, float_format=lambda v: f"{v:,.2f}"))


if __name__ == "__main__":
    main()
