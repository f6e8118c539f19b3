"""The conversation checks of the soak run (5, 5b, 3b), each with its evidence, and the talkers' figures.

What is exactly checkable about turns and LLM requests, and why (``docs/reliability.md`` has the prose):

* Every final ``1003`` with words is a user turn: the server sends it and, in the same step, records the
  turn and starts asking the LLM (unless the agent plays protected speech or speech the voice may not cut;
  nothing is pushed to a talker's agent, so neither happens here).
* Every LLM request holds the call's whole history (``LlmHistoryLimit`` 100; a call is left before 80
  turns), so its user messages are exactly the turns shown so far, in order: their number says which turn
  it answers. Requests are told apart by call through their system prompt, which names the call.
* An answer not yet asked for is dropped when the user speaks again (or the call ends): a turn may then
  have no request. That is allowed only when the next clip's voice began, or the client left, at most
  ``SUPERSEDE_S`` after the turn's ``1003`` arrived (the request normally leaves within milliseconds of
  it). A turn asked twice, a turn never asked without such a reason, or a request whose history differs
  from what was shown is a failure.
"""

from __future__ import annotations

import bisect
import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from bench.soak_checks import Check, verdict
from bench.soak_ledger import Ledger
from bench.soak_procs import Census, WorkerWatch, describe
from bench.soak_talk_client import TalkCall, answer_id, extend_of
from bench.stats import percentile
from herald.testing.llm_server import LlmRequest

SUPERSEDE_S: Final = 1.0
"""How soon after a turn's ``1003`` the user must speak again (or leave) for the turn to go unasked."""
VAD_SILENCE_S: Final = 0.35
"""A ``1003`` comes at least ``AsrMaxSilence`` (400 ms) after the voice it transcribes ended."""
ANSWERED: Final = ("finished", "interrupted")


@dataclass
class TurnAnalysis:
    """Which LLM requests answer which turn of which call, and what could not be matched."""

    requests: list[list[list[LlmRequest]]] = field(default_factory=list)
    """Per call (in ``calls``' order), per turn: the requests that answer it."""
    problems: list[str] = field(default_factory=list)
    superseded: int = 0
    """Turns without a request because the user spoke again (or left) at once."""
    unseen: int = 0
    """Requests for a turn heard after its client had left (its ``1003`` went to nobody)."""
    asked: int = 0


def analyse_turns(calls: list[TalkCall], llm_requests: list[LlmRequest]) -> TurnAnalysis:
    result = TurnAnalysis(requests=[[[] for _ in call.turns] for call in calls])
    by_tag = {call.tag: index for index, call in enumerate(calls)}
    for request in llm_requests:
        messages = request.messages
        first = messages[0] if messages else {}
        index = by_tag.get(str(first.get("content"))) if first.get("role") == "system" else None
        if index is None:
            result.problems.append(f"an LLM request no talker call made: {json.dumps(messages)[:300]}")
            continue
        call = calls[index]
        users = [str(m.get("content")) for m in messages if m.get("role") == "user"]
        shown = [turn.text for turn in call.turns]
        result.asked += 1
        if 0 < len(users) <= len(shown) and users == shown[: len(users)]:
            result.requests[index][len(users) - 1].append(request)
        elif len(users) == len(shown) + 1 and users[:-1] == shown and call.left_s is not None:
            result.unseen += 1
        else:
            result.problems.append(
                f"{call.instance_id}: an LLM request with {len(users)} user messages (last {users[-1:]}) "
                f"does not match the {len(shown)} turns shown (last {shown[-1:]})"
            )
    for index, call in enumerate(calls):
        for number, (turn, asked) in enumerate(zip(call.turns, result.requests[index], strict=True), 1):
            seen = f"{call.instance_id}: turn {number} {turn.text!r}"
            if len(asked) > 1:
                result.problems.append(f"{seen}: {len(asked)} LLM requests, not one")
            elif not asked:
                reason = _superseded(call, turn.received_s)
                if reason is None:
                    result.problems.append(f"{seen}: never asked; {_context(call, turn.received_s)}")
                else:
                    result.superseded += 1
    return result


def _superseded(call: TalkCall, heard_s: float) -> str | None:
    """Why a turn heard at ``heard_s`` may have gone unasked (``None``: no reason)."""
    own = max(
        (
            i
            for i, s in enumerate(call.said)
            if s.spoken and s.spoken.voice_ended_s <= heard_s - VAD_SILENCE_S
        ),
        default=-1,
    )
    for said in call.said[own + 1 :]:
        if said.voice_started_s <= heard_s + SUPERSEDE_S:
            return f"the next clip began {said.voice_started_s - heard_s:+.2f} s after the 1003"
    if call.left_s is not None and call.left_s <= heard_s + SUPERSEDE_S:
        return "the client left"
    return None


def _context(call: TalkCall, at_s: float) -> str:
    near = [f"{s.how} {s.text!r} voice {s.voice_started_s - at_s:+.2f} s" for s in call.said]
    near = [n for n, s in zip(near, call.said, strict=True) if abs(s.voice_started_s - at_s) < 6]
    return "clips near it: " + ("; ".join(near) or "none")


def turns(calls: list[TalkCall], analysis: TurnAnalysis) -> Check:
    """Check 5: every turn the server showed was asked of the LLM exactly once (or superseded at once),
    the dialogue log holds one user line per turn, with its text, and every partial subtitle was closed by
    its final one (on calls whose client stayed to the end)."""
    problems = list(analysis.problems)
    for call in calls:
        open_ = call.partials - {h.sentence_id for h in call.heard}
        if call.complete and open_:
            problems.append(
                f"{call.instance_id}: partial subtitles never closed by a final 1003: {sorted(open_)}"
            )
        logged = [str(line.get("Text")) for line in call.dialogues if line.get("Producer") == "user"]
        shown = [turn.text for turn in call.turns]
        extra_ok = call.left_s is not None and len(logged) == len(shown) + 1 and logged[:-1] == shown
        if logged != shown and not extra_ok:
            problems.append(
                f"{call.instance_id}: the dialogue log's user lines {logged[-3:]} ({len(logged)}) are not "
                f"the turns shown {shown[-3:]} ({len(shown)})"
            )
    total = sum(len(call.turns) for call in calls)
    return verdict(
        "5. every turn asked of the LLM once",
        problems,
        f"{total} turns on {len(calls)} talker calls, {analysis.asked} LLM requests; "
        f"{analysis.superseded} superseded before they were asked, "
        f"{analysis.unseen} heard after the client left",
    )


def answers(calls: list[TalkCall], ledger: Ledger, problems: list[str]) -> Check:
    """Check 5b: every answer utterance ended exactly once, finished or interrupted, the same in every
    witness; nothing but answers was said; every talker call ended cleanly."""
    found = list(problems) + list(ledger.answer_errors)
    known: set[str] = set()
    count = 0
    for call in calls:
        found += call.problems
        rounds = {line.get("RoundId") for line in call.dialogues if line.get("Producer") == "user"}
        lines: Counter[str] = Counter()
        per_round: Counter[str] = Counter()
        for line in call.dialogues:
            if line.get("Producer") != "agent":
                continue
            outcome = str(extend_of(line).get("Outcome"))
            rid = answer_id(line)
            if rid is None or line.get("RoundId") not in rounds:
                found.append(
                    f"{call.instance_id}: an utterance that answers no turn ({outcome}): {line}"[:400]
                )
                continue
            count += 1
            known.add(rid)
            lines[rid] += 1
            per_round[str(line.get("RoundId"))] += 1
            seen = f"{call.instance_id}: answer {rid}"
            extend = extend_of(line)
            if outcome not in ANSWERED and not _cut_unheard(extend):
                found.append(
                    f"{seen} ended {outcome} ({extend.get('Reason')!r}), not finished or interrupted"
                )
            called = sorted(ledger.answer_callbacks.get(rid, []))
            expected = [outcome] if outcome in ANSWERED else []
            if called != expected:
                found.append(f"{seen}: callbacks {called}, expected {expected} for {outcome}")
            heard = call.outcomes.get(rid, [])
            if call.complete and heard != [outcome]:
                found.append(f"{seen}: data channel 1900 {heard}, expected [{outcome!r}]")
            elif len(heard) > 1 or (heard and heard[0] != outcome):
                found.append(f"{seen}: data channel 1900 {heard} (client left), dialogue log {outcome}")
        found += [
            f"{call.instance_id}: {n} dialogue lines for answer {rid}" for rid, n in lines.items() if n > 1
        ]
        found += [f"{call.instance_id}: {n} answers to round {r}" for r, n in per_round.items() if n > 1]
        found += [
            f"{call.instance_id}: 1900 for {rid}, which the dialogue log does not have"
            for rid in sorted(set(call.outcomes) - set(lines))
        ]
        stops = ledger.answer_stops.get(call.instance_id, 0)
        if stops != 1:
            found.append(f"{call.instance_id} ({call.ended}): {stops} agent_stop callbacks, not one")
    found += [
        f"callbacks: an outcome for {rid}, no answer's"
        for rid in sorted(set(ledger.answer_callbacks) - known)
    ]
    return verdict(
        "5b. every answer ended once",
        found,
        f"{count} answers on {len(calls)} talker calls, each finished, interrupted or (cut before it was "
        "heard) dropped, the same in every witness (data channel, callbacks, dialogue log); every call "
        "Finished, one agent_stop each",
    )


def _cut_unheard(extend: dict[str, Any]) -> bool:
    """An answer cut before its first frame: the scheduler calls an utterance that never played ``dropped``
    (a quick second utterance or a barge-in while its first clause was being synthesised)."""
    return (
        extend.get("Outcome") == "dropped"
        and not extend.get("PlayedMs")
        and str(extend.get("Reason")).startswith("replaced by")
    )


def workers(configured: int, end: Census, watch: WorkerWatch, after_exit: list[int]) -> Check:
    """Check 3b: the recogniser's worker processes are back to their number after the run; none leaked
    (more at once), none strayed from the server (orphaned), none left after its exit."""
    problems = []
    if len(end.workers) != configured:
        problems.append(
            f"{len(end.workers)} recogniser workers after the run, not {configured}: "
            + ", ".join(describe(pid) for pid in end.workers)
        )
    if watch.most > configured:
        problems.append(
            f"up to {watch.most} recogniser workers at once during the run ({configured} configured)"
        )
    problems += [f"a zombie below the server: {pid}" for pid in end.zombies]
    problems += [
        f"a process of the run outside the server's tree: {describe(pid)}" for pid in sorted(watch.strays)
    ]
    problems += [
        f"a process of the run outside the server's tree at the end: {describe(p)}" for p in end.strays
    ]
    problems += [f"still running after the server exited: {describe(pid)}" for pid in after_exit]
    return verdict(
        "3b. recogniser workers back to their number",
        problems,
        f"{len(end.workers)} of {configured} after the run, at most {watch.most} at once in {watch.samples} "
        f"looks; none outside the server, none after its exit",
    )


def figures(
    calls: list[TalkCall], analysis: TurnAnalysis, actions: Counter[str], talkers: int
) -> dict[str, Any]:
    """Turns said and answered, barge-ins, and latencies of clips said on their own (no other clip within
    3 s after): end of voice → final ``1003``, and → first audible answer (to replies given at once)."""
    said: Counter[str] = Counter()
    cut = 0
    heard_ms: list[float] = []
    audible_ms: list[float] = []
    outcomes: Counter[str] = Counter()
    answered = 0
    for index, call in enumerate(calls):
        for position, clip in enumerate(call.said):
            if clip.spoken is None:
                cut += 1
                continue
            said[clip.how] += 1
            after = call.said[position + 1 :]
            ended_s = clip.spoken.voice_ended_s
            if after and after[0].voice_started_s < ended_s + 3.0:
                continue
            number = next((n for n, t in enumerate(call.turns) if t.received_s > ended_s), None)
            if number is None or call.turns[number].received_s > ended_s + 5.0:
                continue
            heard_s = call.turns[number].received_s
            heard_ms.append((heard_s - ended_s) * 1000)
            asked = analysis.requests[index][number]
            if len(asked) != 1 or asked[0].reply is None or asked[0].reply.delay_first_s > 0:
                continue
            at = bisect.bisect_right(call.audible_s, heard_s)
            if at < len(call.audible_s) and call.audible_s[at] < heard_s + 10.0:
                audible_ms.append((call.audible_s[at] - ended_s) * 1000)
        answer_rounds = set()
        for line in call.dialogues:
            if answer_id(line) is not None:
                extend = extend_of(line)
                outcomes[str(extend.get("Outcome"))] += 1
                if int(extend.get("PlayedMs") or 0) > 0:
                    answer_rounds.add(line.get("RoundId"))
        answered += len(answer_rounds)
    return {
        "talkers": talkers,
        "calls": len(calls),
        "calls_left": sum(call.left_s is not None for call in calls),
        "actions": dict(sorted(actions.items())),
        "clips_said": dict(sorted(said.items())),
        "clips_cut": cut,
        "turns": sum(len(call.turns) for call in calls),
        "empty_finals": sum(len(call.heard) - len(call.turns) for call in calls),
        "llm_requests": analysis.asked,
        "superseded_unasked": analysis.superseded,
        "heard_after_leaving": analysis.unseen,
        "answers": dict(sorted(outcomes.items())),
        "turns_answered": answered,
        "barge_ins": sum(call.barge_ins for call in calls),
        "voice_end_to_final_1003_ms": _summary(heard_ms),
        "voice_end_to_audible_answer_ms": _summary(audible_ms),
    }


def _summary(samples: list[float]) -> dict[str, float | int | None]:
    if not samples:
        return {"n": 0, "median": None, "p90": None, "max": None}
    return {
        "n": len(samples),
        "median": round(statistics.median(samples)),
        "p90": round(percentile(samples, 90)),
        "max": round(max(samples)),
    }
