"""`aaexp`: one command over Hydra configs and MLflow tracking."""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import traceback

from aaexp import __version__
from aaexp.core.errors import AaexpError, Terminated
from aaexp.core.signals import raise_terminated

COMMANDS = {
    "train": "run an experiment (Hydra overrides; -m for sweeps, --cfg job to print the config)",
    "eval": "measure models or audio (per study: --teacher/--student, --audio/--reference)",
    "report": "compare runs from MLflow as one table (Markdown + CSV + plot), or a static HTML page per study (--html)",
    "ui": "start the MLflow UI on the same store as training",
    "server": "start an MLflow tracking server that jobs on any process or host log to",
}
USAGE = "aaexp [--debug] {" + ",".join(COMMANDS) + "} ..."


def _top_help() -> str:
    lines = [f"usage: {USAGE}", "", __doc__.strip(), "", "commands:"]
    lines += [f"  {name:<8}{text}" for name, text in COMMANDS.items()]
    lines += ["", "options:", "  --debug    show tracebacks instead of one-line errors", "  --version  print the version",
              "", "Run `aaexp COMMAND --help` for a command's own options."]
    return "\n".join(lines)


def _config_dirs(args: list[str]) -> list[str]:
    dirs = []
    for i, a in enumerate(args):
        if a in ("--config-dir", "-cd") and i + 1 < len(args):
            dirs.append(args[i + 1])
        elif a.startswith("--config-dir="):
            dirs.append(a.split("=", 1)[1])
    return dirs


def check_experiments(args: list[str]) -> None:
    """Fail early, listing the choices, when `+experiment=NAME` names no config."""
    from aaexp.core.config import available

    names = available("experiment", _config_dirs(args))
    for a in args:
        m = re.fullmatch(r"\+{0,2}experiment=(.*)", a)
        if not m:
            continue
        for name in m.group(1).split(","):
            if name.strip() and name.strip() not in names:
                raise AaexpError(f"unknown experiment '{name.strip()}'; available: {', '.join(names)}")


class _JobErrorFilter:
    """Hydra writes 'Error executing job with overrides: [...]' to stderr before re-raising;
    keep that line's overrides for our one-line message instead of printing it."""

    def __init__(self, stream):
        self.stream, self.overrides = stream, None

    def write(self, text: str) -> int:
        if text.startswith("Error executing job with overrides:"):
            self.overrides = text.split(":", 1)[1].strip()
            return len(text)
        return self.stream.write(text)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _unknown_override(exc: Exception) -> str | None:
    """Hydra's 'Could not override' for a key the config lacks, worded as config_keys words it."""
    m = re.match(r"Could not override '([^']+)'", str(exc))
    if not (m and "not in struct" in str(exc.__cause__)):
        return None
    from aaexp.core.config_keys import unknown_key_message

    key = m.group(1)
    return unknown_key_message([key], f"on the command line ({key}=...; +{key}=... adds a key on purpose)")


def train(args: list[str]) -> int:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from aaexp.commands import train as train_app

    check_experiments(args)
    sys.argv = ["aaexp train", *args]
    multirun = "-m" in args or "--multirun" in args
    sys.stderr = filt = _JobErrorFilter(sys.stderr)
    try:
        train_app.main()
    except (HydraException, OmegaConfBaseException) as exc:
        # Config or override mistakes are usage errors: one line, exit 2.
        raise AaexpError(_unknown_override(exc) or str(exc).strip().splitlines()[0]) from exc
    except Exception as exc:
        if multirun and filt.overrides:  # say which job of the sweep failed
            raise type(exc)(f"job {filt.overrides}: {exc}") from exc
        raise
    finally:
        sys.stderr = filt.stream
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv[:1] or os.environ.get("HYDRA_FULL_ERROR") == "1"
    if argv[:1] == ["--debug"]:
        argv = argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        print(_top_help())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"aaexp {__version__}")
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"aaexp: error: unknown command '{cmd}'; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    # Hydra re-raises instead of printing its own multi-line report; we print one line.
    saved = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    main_thread = threading.current_thread() is threading.main_thread()  # only there can signals be handled
    on_term = signal.signal(signal.SIGTERM, raise_terminated) if main_thread else None
    try:
        if cmd == "train":
            return train(rest)
        if cmd == "eval":
            from aaexp.commands.eval import main as eval_main
        elif cmd == "report":
            from aaexp.commands.report import main as eval_main
        elif cmd == "server":
            from aaexp.commands.server import main as eval_main
        else:
            from aaexp.commands.ui import main as eval_main
        return eval_main(rest) or 0
    except Terminated:
        print(f"aaexp {cmd}: terminated by SIGTERM (a started run is marked KILLED, its checkpoints kept)", file=sys.stderr)
        return Terminated.exit_code
    except KeyboardInterrupt:
        print("aaexp: interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except Exception as exc:  # one line unless --debug
        if debug:
            traceback.print_exc()
        code = exc.exit_code if isinstance(exc, AaexpError) else 1
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"aaexp {cmd}: error: {msg}", file=sys.stderr)
        return code
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, on_term)
        if saved is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
