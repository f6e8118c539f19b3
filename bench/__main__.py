"""``python -m bench [--only first_audio,interrupt,...] [--quick] [--out PATH] [--profile DIR]``

Runs each figure against its own fresh ``herald serve`` (one figure's calls never load another's), prints
a table per figure as it finishes, and writes everything, with the machine's facts, as JSON: to ``--out``,
or to ``bench/results/<timestamp>.json`` and ``bench/results/latest.json`` (plus ``latest.txt``, the
tables). Benchmarks print numbers; a missed goal does not change the exit status, a failed figure does.
Ctrl-C or SIGTERM stop every server and client process and still save what was measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
import traceback
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench import api, capacity, cluster, conversation, first_audio, interrupt, memory, webrtc
from bench.harness import ROOT, LoadWatch, Options, machine_facts
from bench.stats import Figure, format_table

FIGURES: dict[str, Callable[[Options], Coroutine[Any, Any, Figure]]] = {
    "first_audio": first_audio.run,
    "interrupt": interrupt.run,
    "capacity": capacity.run,
    "api": api.run,
    "memory": memory.run,
    "webrtc": webrtc.run,
    "cluster": cluster.run,
    "conversation": conversation.run,
}
RESULTS = ROOT / "bench" / "results"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1])
    parser.add_argument("--only", default=",".join(FIGURES), help="comma-separated figures (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer runs and shorter steps (a smoke run)")
    parser.add_argument(
        "--out", type=Path, help="JSON results file (default: bench/results/<timestamp>.json)"
    )
    parser.add_argument("--profile", type=Path, help="py-spy flame graphs of the server (api, capacity) here")
    args = parser.parse_args(argv)
    unknown = [name for name in args.only.split(",") if name not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(FIGURES)}")
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C: every server and client is stopped on the way


def _run_figure(key: str, options: Options) -> Figure:
    started = time.monotonic()
    load = LoadWatch()
    try:
        figure = asyncio.run(FIGURES[key](options))
    except Exception as exc:
        traceback.print_exc()
        figure = Figure(key, key, "", error=f"{type(exc).__name__}: {str(exc)[:1500]}")
    figure.duration_s = time.monotonic() - started
    figure.load = load.result()
    return figure


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    options = Options(quick=args.quick, profile_dir=args.profile)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    facts = machine_facts()
    results: dict[str, Any] = {
        "started": stamp,
        "machine": facts,
        "options": {"only": args.only, "quick": args.quick, "profile": str(args.profile or "")},
        "figures": {},
    }
    header = (
        f"Herald {facts['herald_commit']} ({facts['herald_tree_changed_files']} changed files) on "
        f"{facts['cores']} x {facts['cpu_model']}, Python {facts['python']}, {stamp}"
    )
    print(header, flush=True)
    tables = [header]
    started = time.monotonic()
    failed = interrupted = False
    try:
        for key in args.only.split(","):
            print(f"\n... {key}", file=sys.stderr, flush=True)
            figure = _run_figure(key, options)
            failed |= figure.error is not None
            results["figures"][key] = figure.to_json()
            tables.append(format_table(figure))
            print("\n" + tables[-1], flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: saving what was measured", file=sys.stderr)
    results["duration_s"] = round(time.monotonic() - started, 1)
    results["interrupted"] = interrupted
    _save(results, "\n\n".join(tables) + "\n", args.out, stamp)
    return 130 if interrupted else (1 if failed else 0)


def _save(results: dict[str, Any], tables: str, out: Path | None, stamp: str) -> None:
    text = json.dumps(results, indent=2) + "\n"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"\nresults: {out}", file=sys.stderr)
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stamp}.json").write_text(text)
    (RESULTS / "latest.json").write_text(text)
    (RESULTS / "latest.txt").write_text(tables)
    print(f"\nresults: {RESULTS / f'{stamp}.json'} (and latest.json, latest.txt)", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
