"""The soak run's verdicts, each with its evidence, from what the run recorded."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from bench.soak_ledger import Ledger

MB: Final = 1024 * 1024
MEMORY_GROWTH_SHARE: Final = 0.25
MEMORY_GROWTH_BYTES: Final = 60 * MB
"""The server's RSS may grow by the larger of these between warm-up and the end (check 3)."""
FULL_WARMUP_S: Final = 60.0
"""A shorter warm-up ends before synthesis's working memory reaches its plateau (about 200 s of load):"""
SHORT_RUN_GROWTH_SHARE: Final = 0.5
SHORT_RUN_GROWTH_BYTES: Final = 350 * MB
"""... so a run with one is held to these instead: they catch a runaway leak, not a slow one."""
NEVER_FAILS: Final = {
    "short",
    "medium-append",
    "long",
    "drop-if-busy",
    "protected",
    "audio",
    "token-retry",
    "final",
}
EVIDENCE_LINES: Final = 25


@dataclass
class Check:
    name: str
    passed: bool
    summary: str
    evidence: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "summary": self.summary, "evidence": self.evidence}


def verdict(name: str, problems: list[str], summary: str) -> Check:
    shown = problems[:EVIDENCE_LINES]
    if len(problems) > EVIDENCE_LINES:
        shown.append(f"... and {len(problems) - EVIDENCE_LINES} more")
    return Check(name, not problems, summary, shown)


def outcomes(ledger: Ledger) -> Check:
    """Check 1: every accepted speech has exactly one outcome, the same in every witness that saw it."""
    problems = list(ledger.idempotency_violations)
    complete = 0
    for rid, speech in ledger.speeches.items():
        logged = ledger.dialogues.get(rid, [])
        state = logged[0] if logged else ledger.resolved.get(rid, "none")
        seen = f"{rid} ({speech.kind}, {speech.instance_id})"
        if len(logged) != 1:
            problems.append(f"{seen}: {len(logged)} dialogue lines {logged}, not one")
        called = sorted(ledger.callbacks.get(rid, []))
        expected = [state] if state in ("finished", "interrupted", "failed") else []
        if called != expected:
            problems.append(f"{seen}: callbacks {called}, expected {expected} for {state}")
        heard = ledger.channel.get(rid, [])
        if ledger.instances[speech.instance_id].channel_complete:
            complete += 1
            if heard != [state]:
                problems.append(f"{seen}: data channel 1900 {heard}, expected [{state!r}]")
        elif len(heard) > 1 or (heard and heard[0] != state):
            problems.append(f"{seen}: data channel 1900 {heard} (listener churned), dialogue log {state}")
    accepted = set(ledger.speeches)
    for source, seen_ids in (("data channel", ledger.channel), ("callbacks", ledger.callbacks)):
        extra = set(seen_ids) - accepted
        problems += [
            f"{source}: an outcome for {rid}, which no accepted request had" for rid in sorted(extra)
        ]
    extra_lines = {rid for rid, kind in ledger.dialogue_types.items() if kind == "speech"} - accepted
    problems += [f"dialogue log: a speech line for {rid}, never accepted" for rid in sorted(extra_lines)]
    return verdict(
        "1. exactly one outcome per accepted speech",
        problems,
        f"{len(ledger.speeches)} accepted speeches, {complete} on calls whose listener saw everything; "
        f"witnesses: data channel, callbacks, dialogue log",
    )


def plausible(ledger: Ledger) -> Check:
    """Check 1b: texts and good audio never fail; garbage audio never plays to its end."""
    problems = []
    for rid, speech in ledger.speeches.items():
        state = (ledger.dialogues.get(rid) or ["none"])[0]
        if speech.kind in NEVER_FAILS and state == "failed":
            problems.append(f"{rid} ({speech.kind}) failed")
        if speech.kind == "audio-garbage" and state == "finished":
            problems.append(f"{rid} (garbage audio) finished")
    return verdict("1b. outcomes fit what was sent", problems, "no text or good audio failed")


def instances(ledger: Ledger, problems: list[str], left_pending: list[str]) -> Check:
    """Check 2: nothing stuck: every speech ended within the drain's bound, every instance ended cleanly."""
    found = list(left_pending) + list(problems)
    for instance_id, instance in ledger.instances.items():
        stops = ledger.agent_stops.get(instance_id, 0)
        if stops != 1:
            found.append(f"{instance_id} ({instance.ended}): {stops} agent_stop callbacks, not one")
    ended: dict[str, int] = {}
    for instance in ledger.instances.values():
        ended[str(instance.ended)] = ended.get(str(instance.ended), 0) + 1
    return verdict(
        "2. no instance stuck",
        found,
        f"{len(ledger.instances)} instances ({', '.join(f'{n} {how}' for how, n in sorted(ended.items()))}); "
        "all Finished, live ones quiet before their stop",
    )


def memory(
    warm: dict[str, float],
    end: dict[str, float],
    share: float = MEMORY_GROWTH_SHARE,
    bytes_: float = MEMORY_GROWTH_BYTES,
) -> Check:
    """Check 3: the server's own RSS after the run is within the bound of its RSS after warm-up."""
    growth = end["server"] - warm["server"]
    bound = max(share * warm["server"], bytes_)
    short = share >= SHORT_RUN_GROWTH_SHARE and bytes_ >= SHORT_RUN_GROWTH_BYTES
    summary = (
        f"server RSS {warm['server'] / MB:.1f} MB after warm-up, {end['server'] / MB:.1f} MB at the end "
        f"({growth / MB:+.1f} MB; bound +{bound / MB:.0f} MB{', a short run: runaway leaks only' * short}); "
        f"child processes {warm['children'] / MB:.1f} -> {end['children'] / MB:.1f} MB"
    )
    problems = [f"grew {growth / MB:.1f} MB, over {bound / MB:.0f} MB"] if growth > bound else []
    return verdict("3. memory returned to its level", problems, summary)


def server(
    latencies_ms: list[float],
    probe_failures: list[str],
    server_errors: list[str],
    unexpected: list[str],
    alive: bool,
    exit_code: int | None,
    log: str,
) -> Check:
    """Check 4: the server answered throughout, never with a 5xx, lived to the end, and logged no error."""
    problems = [f"probe failed: {f}" for f in probe_failures]
    problems += [f"5xx: {e}" for e in server_errors]
    problems += [f"unexpected answer: {u}" for u in unexpected if u not in server_errors]
    if not latencies_ms:
        problems.append("the prober got no answer at all")
    if not alive:
        problems.append("the server process died during the run")
    if exit_code != 0:
        problems.append(f"the server exited with {exit_code} after SIGTERM")
    problems += [f"log: {line}" for line in log_errors(log.splitlines())]
    return verdict(
        "4. the server answered throughout",
        problems,
        f"{len(latencies_ms)} probes, {len(probe_failures)} failed; no 5xx, no traceback, clean exit",
    )


def log_errors(lines: Iterable[str]) -> list[str]:
    """Lines of the server's log at ERROR or above, or carrying a traceback."""
    found = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            if record.get("level") in ("ERROR", "CRITICAL") or "exception" in record:
                found.append(line[:600])
        elif "Traceback" in line or " ERROR " in line or " CRITICAL " in line:
            found.append(line[:600])
    return found
