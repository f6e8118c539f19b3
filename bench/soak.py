"""``python -m bench.soak [--minutes N] [--instances M] [--talkers T] [--json PATH] [--seed S]``: a soak.

One real ``herald serve``, ``M`` calls with listeners (a third of them leave and come back at random), and
``N`` minutes of seeded random work on them: text and audio-URL speeches under every arrival policy,
protected speeches, ClientToken retries, updates, stops and abandoned calls replaced by new ones, and a
trickle of bad requests; a prober asks ``DescribeAIAgentInstance`` every 0.25 s throughout. Beside them,
``T`` conversation calls whose clients speak (Piper clips: turns, barge-ins, quick second utterances, and
leaving mid-sentence) to agents that listen and answer through a scripted LLM. Then it checks
(``docs/reliability.md``): exactly one outcome per accepted speech; no instance stuck; memory back to its
level after warm-up; the recogniser's workers back to their number; the server answered throughout (no
failed probe, no 5xx, no traceback, a clean exit); every turn asked of the LLM once; every answer ended
once. It prints the figures and exits non-zero, naming the failed checks, if any failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from bench import soak_checks, soak_talk_checks
from bench.harness import LoadWatch, descendants, machine_facts, rpc_for, rss_bytes, running_server, wait_idle
from bench.listeners import LATE_GAP_MS, run_fast
from bench.soak_bad import KINDS as BAD_KINDS
from bench.soak_bad import BadRequests
from bench.soak_checks import MB, Check
from bench.soak_ledger import Ledger
from bench.soak_load import Load, MediaUrls
from bench.soak_procs import MARK_ENV, WorkerWatch, census, marked, new_mark
from bench.soak_talk import ASR_WORKERS, Talkers, prepare_clips, script_replies
from bench.soak_wire import Prober, Requests
from bench.stats import percentile
from herald.testing import audio_files
from herald.testing.llm_server import ScriptedLlm
from herald.testing.media_server import MediaServer
from herald.testing.receiver import CallbackReceiver
from herald.testing.server import HeraldServer

SERVER_CONFIG: Final = f"[tts]\ncache_mb = 16\n[asr]\nworkers = {ASR_WORKERS}\n"
"""A small synthesis cache: its legitimate growth stays far under the memory bound (check 3); two
recogniser workers, one per talker (check 3b counts them)."""


@dataclass(frozen=True)
class SoakConfig:
    minutes: float = 5.0
    instances: int = 12
    talkers: int = 2
    """Conversation calls whose clients speak to the agent (0: none, and no LLM)."""
    seed: int = 1
    max_voices: int = 8
    """Calls allowed to speak at once (two cores synthesise about 33 voices in real time at most)."""
    warmup_s: float | None = None
    """Load before the memory baseline (default: a fifth of the run, 8 to 60 s)."""
    drain_s: float = 20.0
    """After the load, how long queues may play out before a last interrupting speech cuts them."""
    drain_bound_s: float = 30.0
    """Then how long every speech has to get its outcome (check 2's bound)."""
    settle_s: float = 5.0
    memory_share: float | None = None
    memory_mb: float | None = None
    """Check 3's bound: the server's RSS may grow by the larger of ``memory_share`` and ``memory_mb``
    (default: 25% or 60 MB after a warm-up of a minute; 50% or 350 MB after a shorter one, which ends before
    synthesis's working memory reaches its plateau, and so catches a runaway leak only)."""

    @property
    def load_s(self) -> float:
        return self.minutes * 60

    @property
    def warmup(self) -> float:
        return self.warmup_s if self.warmup_s is not None else min(60.0, max(8.0, self.load_s / 5))

    @property
    def memory_bound(self) -> tuple[float, float]:
        """Check 3's bound: (share of the baseline, bytes)."""
        full = self.warmup >= soak_checks.FULL_WARMUP_S
        share = soak_checks.MEMORY_GROWTH_SHARE if full else soak_checks.SHORT_RUN_GROWTH_SHARE
        bytes_ = soak_checks.MEMORY_GROWTH_BYTES if full else soak_checks.SHORT_RUN_GROWTH_BYTES
        if self.memory_share is not None:
            share = self.memory_share
        return share, bytes_ if self.memory_mb is None else self.memory_mb * MB


@dataclass
class SoakReport:
    config: SoakConfig
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "passed": self.passed,
            "checks": [c.to_json() for c in self.checks],
            "figures": self.figures,
        }

    def text(self) -> str:
        f = self.figures
        lines = [
            f"Soak: {self.config.instances} instances, {self.config.talkers} talkers, "
            f"{self.config.minutes:g} min, seed {self.config.seed}"
        ]
        lines += ["", "requests (kind: answers)"]
        for kind, answers in sorted(f["requests"].items()):
            lines.append(f"  {kind:<28} " + ", ".join(f"{a} x{n}" for a, n in sorted(answers.items())))
        lines += ["", "speeches (kind: outcome from the dialogue log)"]
        for kind, states in sorted(f["speeches"].items()):
            lines.append(f"  {kind:<28} " + ", ".join(f"{s} {n}" for s, n in sorted(states.items())))
        p, m, li = f["prober"], f["rss_mb"], f["listeners"]
        lines += [
            "",
            f"prober: {p['probes']} probes, p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms, "
            f"max {p['max_ms']} ms, {p['failures']} failed",
            f"server RSS: {m['warm']['server']} MB after warm-up, {m['end_live']['server']} MB at the end "
            f"with calls live, {m['end']['server']} MB after stop and settle ({m['growth']:+} MB); "
            f"child processes (decoders, recogniser) {m['warm']['children']} -> {m['end']['children']} MB",
            f"listeners: {li['connections']} connections, {li['frames']} frames, {li['late_gaps']} gaps over "
            f"{LATE_GAP_MS} ms, gap p99 {li['gap_p99_ms']} ms, max {li['max_gap_ms']} ms",
            *_conversation_text(f["conversation"], f["asr_workers"]),
            f"run: {f['duration_s']} s ({', '.join(f'{k} {v}' for k, v in f['phases_s'].items())}); "
            f"other work on the machine {f['load']['other_cores']} cores",
            "",
        ]
        for check in self.checks:
            lines.append(f"{'PASS' if check.passed else 'FAIL'}  {check.name}: {check.summary}")
            lines += [f"      {line}" for line in check.evidence]
        return "\n".join(lines)


async def run(config: SoakConfig) -> SoakReport:
    """The whole run against a fresh server; the report holds every check and figure."""
    started, watch = time.monotonic(), LoadWatch()
    ledger, requests, report = Ledger(), Requests(), SoakReport(config)
    rng = random.Random(config.seed)
    clips = await asyncio.to_thread(prepare_clips) if config.talkers else {}
    media, receiver, llm, mark = MediaServer(), CallbackReceiver(), ScriptedLlm(), new_mark()
    script_replies(llm, config.seed)
    env = {"HERALD_FETCH_ALLOW": f"{media.host},{receiver.host}", MARK_ENV: mark}
    server_config = SERVER_CONFIG + (llm.server_config() if config.talkers else "")
    with media, receiver, llm, running_server(env=env, config=server_config) as server:
        load = Load(
            server,
            receiver.url,
            _media(media),
            ledger,
            requests,
            seed=config.seed,
            slots=config.instances,
            max_voices=min(config.max_voices, config.instances),
        )
        talkers = Talkers(
            server, receiver.url, ledger, requests, clips, seed=config.seed, count=config.talkers
        )
        prober = Prober(rpc_for(server), await _probe_instance(server, requests))
        bad = BadRequests(
            requests,
            "127.0.0.1",
            server.port,
            server.access_key_id,
            server.access_key_secret,
            lambda: load.live_instance(rng),
            load.used_tokens,
        )
        bad_kinds = list(BAD_KINDS)
        rng.shuffle(bad_kinds)
        stop = asyncio.Event()
        series: list[tuple[float, float, float]] = []
        workers = WorkerWatch(server.pid, mark)
        background = [
            asyncio.create_task(prober.run(stop)),
            asyncio.create_task(_pump_callbacks(receiver, ledger, stop)),
            asyncio.create_task(_sample_rss(server.pid, series, stop)),
            asyncio.create_task(workers.run(stop)),
        ]
        phases: dict[str, float] = {}

        def mark_phase(name: str) -> None:
            phases[name] = round(time.monotonic() - started, 1)

        left: list[str] = []
        try:
            await load.start()
            await talkers.start()
            await load.peak()
            mark_phase("started")
            for phase, phase_s in (("warm-up", config.warmup), ("load", config.load_s - config.warmup)):
                deadline = time.monotonic() + max(0.0, phase_s)
                await asyncio.gather(
                    load.run_for(phase_s), bad.run(rng, deadline, bad_kinds), talkers.run_for(phase_s)
                )
                mark_phase(phase)
                drained, _ = await asyncio.gather(
                    load.drain(config.drain_s, config.drain_bound_s),
                    talkers.drain(config.drain_s + config.drain_bound_s),
                )
                left += drained
                mark_phase(f"{phase} drained")
                if "warm" not in report.figures:
                    await wait_idle(server.pid)
                    report.figures["warm"] = await _rss(server)
            await talkers.final_round()
            mark_phase("last turns")
            end_live = await _rss(server)
            await talkers.finish()
            await load.finish()
            await requests.call(prober.api, "stop", "StopAIAgentInstance", {"InstanceId": prober.instance_id})
            mark_phase("stopped")
            for instance in ledger.instances.values():
                await load.slots[instance.slot].dialogues(instance.session_id, final=True)
            await talkers.read_dialogues()
            await _wait_callbacks(receiver, ledger, talkers, timeout_s=20)
            mark_phase("witnesses collected")
            await wait_idle(server.pid)
            await asyncio.sleep(config.settle_s)
            end = await _rss(server)
            workers_end = census(server.pid, mark)
            mark_phase("settled")
        finally:
            stop.set()
            await asyncio.gather(*background)
            await prober.api.close()
            await bad.close()
            for slot in load.slots:
                await slot.close()
            await talkers.close()
        alive = server.running
        exit_code = server.stop(check=False) if alive else None
        log = server.logs()
        after_exit = await _left_behind(mark)
    warm = report.figures.pop("warm")
    turns = soak_talk_checks.analyse_turns(talkers.calls, llm.requests)
    report.checks = [
        soak_checks.outcomes(ledger),
        soak_checks.plausible(ledger),
        soak_checks.instances(ledger, load.problems, left),
        soak_checks.memory(warm, end, *config.memory_bound),
        soak_talk_checks.workers(ASR_WORKERS, workers_end, workers, after_exit),
        soak_checks.server(
            prober.latencies_ms,
            prober.failures,
            requests.server_errors,
            requests.unexpected,
            alive,
            exit_code,
            log,
        ),
        soak_talk_checks.turns(talkers.calls, turns),
        soak_talk_checks.answers(talkers.calls, ledger, talkers.problems),
    ]
    report.figures = _figures(requests, ledger, prober, load, warm, end_live, end)
    report.figures["conversation"] = soak_talk_checks.figures(
        talkers.calls, turns, talkers.actions, config.talkers
    )
    report.figures["asr_workers"] = {
        "configured": ASR_WORKERS,
        "after_run": len(workers_end.workers),
        "most_at_once": workers.most,
    }
    report.figures["duration_s"] = round(time.monotonic() - started, 1)
    report.figures["phases_s"] = phases
    report.figures["rss_series_mb"] = [
        [round(t, 1), round(a / MB, 1), round(b / MB, 1)] for t, a, b in series
    ]
    report.figures["load"] = watch.result()
    return report


async def _left_behind(mark: str, grace_s: float = 5.0) -> list[int]:
    """The run's processes still there ``grace_s`` after the server exited (none may outlive it)."""
    for _ in range(round(grace_s / 0.25)):
        if not marked(mark):
            return []
        await asyncio.sleep(0.25)
    return marked(mark)


def _conversation_text(c: dict[str, Any], workers: dict[str, int]) -> list[str]:
    heard, audible = c["voice_end_to_final_1003_ms"], c["voice_end_to_audible_answer_ms"]
    recogniser = (
        f"recogniser workers: {workers['configured']} configured, {workers['after_run']} after the run, "
        f"at most {workers['most_at_once']} at once"
    )
    if not c["talkers"]:
        return [recogniser]
    return [
        f"conversation: {c['talkers']} talkers, {c['calls']} calls ({c['calls_left']} left mid-sentence); "
        f"clips said {sum(c['clips_said'].values())} ("
        + ", ".join(f"{k} {v}" for k, v in c["clips_said"].items())
        + f"), {c['clips_cut']} cut",
        f"  turns heard {c['turns']} (+{c['empty_finals']} empty finals), LLM requests {c['llm_requests']}, "
        f"{c['superseded_unasked']} superseded unasked, {c['heard_after_leaving']} heard after leaving; "
        f"answers {', '.join(f'{k} {v}' for k, v in c['answers'].items()) or 'none'}; "
        f"turns answered {c['turns_answered']}; barge-ins {c['barge_ins']}",
        f"  end of voice -> final 1003: median {heard['median']} ms, p90 {heard['p90']} ms (n={heard['n']}); "
        f"-> first audible answer: median {audible['median']} ms, p90 {audible['p90']} ms (n={audible['n']})",
        f"  {recogniser}",
    ]


def _media(media: MediaServer) -> MediaUrls:
    good = (
        media.file("/tone-2s.wav", audio_files.sine_wav(2.0, 16_000), "audio/wav"),
        media.file("/tone-5s.wav", audio_files.sine_wav(5.0, 44_100, channels=2), "audio/wav"),
    )
    garbage = media.file("/garbage.wav", audio_files.garbage(64 * 1024, seed=7), "audio/wav")
    truncated = media.file(
        "/truncated.wav", audio_files.truncated(audio_files.sine_wav(4.0), 0.3), "audio/wav"
    )
    return MediaUrls(good, garbage, truncated)


async def _probe_instance(server: HeraldServer, requests: Requests) -> str:
    """An instance for the prober to describe, alive (nobody joins it) for the whole run."""
    config = json.dumps({"UserOnlineTimeout": 86_400, "MaxIdleTime": 86_400})
    async with rpc_for(server) as api:
        body = await requests.call(
            api, "generate", "GenerateAIAgentCall", {"AIAgentId": "default", "AgentConfig": config}
        )
    if body is None:
        raise RuntimeError(f"the prober's instance could not be created: {requests.unexpected}")
    return str(body["InstanceId"])


async def _pump_callbacks(receiver: CallbackReceiver, ledger: Ledger, stop: asyncio.Event) -> None:
    """Feed callback events to the ledger as they arrive (they are a witness the actors pace by)."""
    while True:
        for body in receiver.events():
            ledger.on_callback(body)
        if stop.is_set():
            return
        await asyncio.sleep(0.3)


async def _wait_callbacks(
    receiver: CallbackReceiver, ledger: Ledger, talkers: Talkers, timeout_s: float
) -> None:
    """Until every ended speech and answer that has a callback event, and every instance's ``agent_stop``,
    arrived."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for body in receiver.events():
            ledger.on_callback(body)
        missing = [
            rid
            for rid, states in ledger.dialogues.items()
            if states and states[0] != "dropped" and rid not in ledger.callbacks
        ]
        if (
            not missing
            and all(ledger.agent_stops.get(i) for i in ledger.instances)
            and not talkers.missing_callbacks()
        ):
            return
        await asyncio.sleep(0.25)


async def _sample_rss(pid: int, series: list[tuple[float, float, float]], stop: asyncio.Event) -> None:
    """The server's RSS and its children's every 2 s: whether memory levels off or keeps climbing."""
    started = time.monotonic()
    while not stop.is_set():
        children = sum(rss_bytes(child) for child in descendants(pid))
        series.append((time.monotonic() - started, float(rss_bytes(pid)), float(children)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 2.0)


async def _rss(server: HeraldServer) -> dict[str, float]:
    """Median of five readings over half a second: the server's own RSS and its children's total."""
    readings: list[tuple[int, int]] = []
    for _ in range(5):
        readings.append((rss_bytes(server.pid), sum(rss_bytes(pid) for pid in descendants(server.pid))))
        await asyncio.sleep(0.1)
    return {
        "server": statistics.median(r[0] for r in readings),
        "children": statistics.median(r[1] for r in readings),
    }


def _figures(
    requests: Requests,
    ledger: Ledger,
    prober: Prober,
    load: Load,
    warm: dict[str, float],
    end_live: dict[str, float],
    end: dict[str, float],
) -> dict[str, Any]:
    by_kind: dict[str, dict[str, int]] = {}
    for (kind, answer), n in requests.counts.items():
        by_kind.setdefault(kind, {})[answer] = n
    latencies = prober.latencies_ms or [0.0]
    histogram = load.histogram
    gaps = sum(histogram)

    def mb(reading: dict[str, float]) -> dict[str, float]:
        return {k: round(v / MB, 1) for k, v in reading.items()}

    return {
        "requests": by_kind,
        "speeches": ledger.outcomes_by_kind(),
        "prober": {
            "probes": len(prober.latencies_ms),
            "failures": len(prober.failures),
            "p50_ms": round(percentile(latencies, 50), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
            "max_ms": round(max(latencies), 1),
        },
        "rss_mb": {
            "warm": mb(warm),
            "end_live": mb(end_live),
            "end": mb(end),
            "growth": round((end["server"] - warm["server"]) / MB, 1),
        },
        "listeners": {
            "connections": len(load.witnesses),
            "frames": sum(w.frames for w in load.witnesses),
            "late_gaps": sum(w.late for w in load.witnesses),
            "max_gap_ms": round(max((w.max_gap_ms for w in load.witnesses), default=0.0), 1),
            "gap_p99_ms": _gap_percentile(histogram, 99) if gaps else None,
        },
        "instances": len(ledger.instances),
        "actions": dict(sorted(load.actions.items())),
    }


def _gap_percentile(histogram: list[int], q: float) -> float:
    rank, seen = sum(histogram) * q / 100, 0
    for gap_ms, count in enumerate(histogram):
        seen += count
        if seen >= rank:
            return float(gap_ms + 1)
    return float(len(histogram))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[1])
    parser.add_argument("--minutes", type=float, default=5.0, help="minutes of load (default 5)")
    parser.add_argument("--instances", type=int, default=12, help="calls at once (default 12)")
    parser.add_argument(
        "--talkers", type=int, default=2, help="conversation calls that speak (default 2; 0: none)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of every random choice (default 1)")
    parser.add_argument("--voices", type=int, default=8, help="calls speaking at once, at most (default 8)")
    parser.add_argument("--json", type=Path, help="write the report as JSON here")
    args = parser.parse_args(argv)
    config = SoakConfig(
        minutes=args.minutes,
        instances=args.instances,
        talkers=max(0, args.talkers),
        seed=args.seed,
        max_voices=args.voices,
    )
    reports: list[SoakReport] = []

    async def go() -> None:
        reports.append(await run(config))

    print(
        f"soak: {config.instances} instances, {config.talkers} talkers, {config.minutes:g} min of load, "
        f"seed {config.seed} ...",
        flush=True,
    )
    run_fast(go())
    if not reports:
        return 130  # interrupted
    report = reports[0]
    print(report.text())
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine_facts(), **report.to_json()}, indent=2) + "\n")
    failed = [c.name for c in report.checks if not c.passed]
    if failed:
        print(
            f"\nFAILED: {'; '.join(failed)} (evidence above; repeat with --seed {config.seed})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
