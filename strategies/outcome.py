"""How a run ended, as one exit code shared by backtest, paper and live, and why.

Pure: it reads a run report (strategies.report) and what the session around it knows (killed,
timed out), so the three commands judge the same outcome the same way.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import IntEnum

import pandas as pd

# how a request may end without making the run incomplete (see RequestOutcome.ended_by)
ENDINGS_OK = frozenset({"filled", "deadline", "cut"})
SHOWN_REASONS = 10  # a 10,000-account plan must not flood the terminal


class ExitCode(IntEnum):
    OK = 0  # every request FILLED, or ended at its phase deadline (or RECALC's cut) with its reason
    INCOMPLETE = 1  # the run ran, but some request did not end well, or the run itself did not
    REFUSED = 2  # refused before anything ran: nothing sent, nothing written
    KILLED = 3  # the kill switch, SIGINT or SIGTERM stopped it
    START_FAILED = 4  # the live node could not connect or start: nothing sent


@dataclass(frozen=True)
class Affected:
    request_id: str
    state: str
    reason: str


@dataclass(frozen=True)
class Verdict:
    code: ExitCode
    affected: list[Affected] = field(default_factory=list)  # requests that made the run not OK
    problems: list[str] = field(default_factory=list)  # what went wrong with the run as a whole

    def reason_counts(self) -> list[tuple[str, int]]:
        """(reason, number of requests) for the affected requests, most frequent first."""
        return Counter(a.reason for a in self.affected).most_common()

    def explanation(self) -> list[str]:
        """Lines saying why the code is not OK; empty when it is."""
        if self.code == ExitCode.OK:
            return []
        lines = [f"exit {int(self.code)} ({self.code.name}):"]
        lines += [f"  {p}" for p in self.problems]
        if self.affected:
            counts = self.reason_counts()
            lines.append(f"  {len(self.affected)} request(s) did not end FILLED or at their phase deadline:")
            for reason, count in counts[:SHOWN_REASONS]:
                lines.append(f"    {count:>6} x {reason}")
            if len(counts) > SHOWN_REASONS:
                lines.append(f"    ... and {len(counts) - SHOWN_REASONS} more reasons")
            lines.append("  every request's state and reason is in requests.csv")
        return lines


def judge(summary: dict, requests: pd.DataFrame, *, killed: bool = False, timed_out: bool = False) -> Verdict:
    """The exit code of a run that ran, from its report's summary and requests frame.

    `requests` needs the columns request_id, state, reason and ended_by. KILLED wins over
    INCOMPLETE: a stopped run is reported as stopped, with the requests it left unfinished.
    """
    problems = []
    if timed_out:
        problems.append("the session timed out; open orders were cancelled")
    below = int(summary.get("accounts_below_zero", 0))
    if below:
        problems.append(f"{below} account(s) ended below zero cash (lowest {summary.get('min_cash_left')} USD)")
    breaches = summary.get("ledger_breaches") or []
    if breaches:
        problems.append(f"{len(breaches)} ledger breach(es), the first: {breaches[0]}")
    if summary.get("failure"):
        problems.append(str(summary["failure"]))
    affected = [
        Affected(str(r.request_id), str(r.state), str(r.reason) if r.reason else "(no reason recorded)")
        for r in requests.itertuples(index=False)
        if r.ended_by not in ENDINGS_OK
    ]
    if killed:
        halted = summary.get("halted")
        problems.insert(0, f"stopped by the kill switch ({halted})" if halted else "stopped by the kill switch")
        return Verdict(ExitCode.KILLED, affected, problems)
    if problems or affected:
        return Verdict(ExitCode.INCOMPLETE, affected, problems)
    return Verdict(ExitCode.OK)


def judge_report(report, *, killed: bool = False, timed_out: bool = False) -> Verdict:
    """`judge` for a RunReport; a run that ended before its plan was loaded has none."""
    if report is None:
        code = ExitCode.KILLED if killed else ExitCode.INCOMPLETE
        return Verdict(code, [], ["the session ended before the plan was loaded: no report"])
    return judge(report.summary, report.requests, killed=killed, timed_out=timed_out)


__all__ = ["ENDINGS_OK", "Affected", "ExitCode", "Verdict", "judge", "judge_report"]
