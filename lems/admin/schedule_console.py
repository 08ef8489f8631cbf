"""The console's ``schedule``: every scheduled job with its last and next run on switch time."""

from __future__ import annotations

from lems.admin.shell import Console, Reply, _utc, command


@command("schedule", "schedule", "scheduled jobs (NICS transmission, validation lists, ...): last and next run")
def do_schedule(console: Console, args: list[str], line: str, target: dict) -> Reply:
    scheduler = console.switch.schedule
    lines = [f"{'JOB':<24}{'LAST RUN':<25}NEXT RUN"]
    for name in sorted(scheduler.jobs):
        last, due = scheduler.last_run(name), scheduler.next_run(name)
        lines.append(f"{name:<24}{_utc(last) if last else '-':<25}{_utc(due) if due else '-'}")
    lines.append(f"{len(scheduler.jobs)} job(s)")
    return Reply(lines)
