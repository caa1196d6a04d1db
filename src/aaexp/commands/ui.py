"""`aaexp ui`: the MLflow UI over the store that training writes to."""

from __future__ import annotations

import argparse
import sys

from aaexp.tracking import store as tracking


def command(uri: str, host: str, port: int) -> list[str]:
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    root = tracking.artifact_root(uri)
    if root:
        cmd += ["--default-artifact-root", root]
    return cmd


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="aaexp ui", description="Start the MLflow UI on the training store.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db")
    args = p.parse_args(argv)
    uri = tracking.resolve_uri(args.tracking_uri)
    print(f"MLflow UI: {tracking.ui_url(f'http://{args.host}:{args.port}')}  (store {uri}); Ctrl-C stops it", flush=True)
    return tracking.run_until_interrupted(command(uri, args.host, args.port), stop_timeout_s=10)
