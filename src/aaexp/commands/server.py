"""`aaexp server`: one MLflow tracking server that every job of a sweep (any process, any host) logs to.

Jobs on other machines cannot share a SQLite file safely; they all talk HTTP to this server, which
owns the database and stores the artifacts they upload (`--serve-artifacts`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aaexp.core.errors import AaexpError
from aaexp.tracking import store as tracking


def command(store: str, host: str, port: int, artifacts: str, extra: list[str] | None = None) -> list[str]:
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store, "--host", host, "--port", str(port),
            "--serve-artifacts", "--artifacts-destination", artifacts, *(extra or [])]


def default_artifacts(store: str) -> str:
    """`mlartifacts/` beside a SQLite store (where `aaexp train` without a server puts them too)."""
    if store.startswith("sqlite:///"):
        return str(Path(store[len("sqlite:///"):]).parent / "mlartifacts")
    return str(Path("mlartifacts").resolve())


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="aaexp server",
        description="Start an MLflow tracking server; point every job at it with MLFLOW_TRACKING_URI=http://HOST:PORT.",
        epilog="Arguments after `--` go to `mlflow server` unchanged (e.g. -- --workers 4 --allowed-hosts '*').")
    p.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to accept jobs from other hosts (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--backend-store-uri", default=tracking.DEFAULT_URI, help="runs, params, metrics (default sqlite:///mlflow.db)")
    p.add_argument("--artifacts-destination", help="where uploaded artifacts are stored (default mlartifacts/ beside the store)")
    extra: list[str] = []
    if "--" in argv:
        argv, extra = argv[: argv.index("--")], argv[argv.index("--") + 1:]
    args = p.parse_args(argv)
    if not 0 < args.port < 65536:
        raise AaexpError(f"--port {args.port}: not a TCP port (1-65535)")
    if args.backend_store_uri.startswith(("http://", "https://")):
        raise AaexpError(f"--backend-store-uri {args.backend_store_uri}: that is a server, not a store (sqlite:///FILE or a database URI)")
    store = tracking.resolve_uri(args.backend_store_uri)
    artifacts = args.artifacts_destination or default_artifacts(store)
    if "://" not in artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        artifacts = str(Path(artifacts).resolve())
    shown = "<this host's name>" if args.host in ("0.0.0.0", "::") else args.host
    print(f"MLflow tracking server on http://{args.host}:{args.port} (store {store}, artifacts {artifacts}).\n"
          f"In every shell that runs jobs:  export MLFLOW_TRACKING_URI=http://{shown}:{args.port}\n"
          f"UI: {tracking.ui_url(f'http://{shown}:{args.port}')}   Ctrl-C stops it", flush=True)
    if store.startswith("sqlite:///"):
        tracking.client(store).search_experiments()  # create/migrate the schema under aaexp's lock, once
    return tracking.run_until_interrupted(command(store, args.host, args.port, artifacts, extra), stop_timeout_s=30)
