"""``lems bench``: load generator and benchmark, switch against a bare TLS echo server.

    lems bench [--terminals N] [--seconds S] [--rate R] [--records N] [--mix SPEC]
               [--connections N [--heartbeat S]] [--workers W] [--plot FILE]
               [--profile FILE] [--json FILE] [--no-echo]

One run measures two servers under the same load, one after the other, on the
same machine (docs/PERFORMANCE.md gives the target, the method and the figures):

1. the switch: ``lems serve`` in its own process on a fresh temporary home
   (``lems.tools.home.init``) and a free port;
2. the reference: ``python -m lems.tools.echo`` in its own process, with the same
   home's certificates and the same framing: a pure line echo, every frame back
   as it came (no header work), so the ratio is against what the transport
   alone can do.

The load comes from ``--workers`` processes (default: one per spare core),
each one Twisted reactor with many mutual-TLS connections.  The home gets
``N`` extra terminals ``TB000001``... (type ``mobile``, so they never idle-lock;
the switch allows one session per terminal) and one operator ``OPBENCH1``
whose password hash is cheap, so that signing 200 terminals on does not take
minutes of scrypt; sign-on is not measured.  Closed loop (default): each
terminal sends, waits for its reply, sends again.  Open loop (``--rate R``):
R messages per second in all, sent on schedule whatever the replies do.
Connections (``--connections N``): N terminals connected and signed on, each
sending only a heartbeat every ``--heartbeat`` seconds (default 30), spread
evenly; give ``--seconds`` at least one heartbeat interval.  Every run reports
latency percentiles, the server's resident memory and how long it took to start
and listen.

``--mix`` weights the message kinds: ``qw-hit`` (a wanted-person hit with
three records), ``qw-nohit``, ``qv`` (plate hit), ``qg`` (gun hit), ``hbt``,
``ew`` (a unique wanted-person entry; leave it out while the switch has no
route for entries).  ``--records N`` adds N synthetic wanted persons and N
stolen vehicles to the home (routes/records/bench-*.jsonl) and imports them
with ``lems records import`` (the import rate is printed), before the switch
starts: its start time is then a restart's, with the records already in the
store; inquiry cost should not grow with the file.  ``--profile FILE`` runs the switch under cProfile,
writes the stats to FILE and prints where the time went.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

from lems.tools.args import EXIT_OK, EXIT_REJECT, fail, standalone
from lems.tools.bench_home import prepare_home
from lems.tools.bench_load import DEFAULT_MIX, parse_mix, run_load
from lems.tools.bench_report import describe, plot, print_profile, ratio


# -- servers in their own processes ---------------------------------------------------------------


class Server:
    """A child process that prints its port on a line matching ``pattern``."""

    def __init__(self, name: str, argv: list[str], pattern: str, log_path: Path,
                 env: Optional[dict[str, str]] = None) -> None:
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, "w")
        started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        self.port = self._wait_port(re.compile(pattern))
        self.ready_seconds = time.monotonic() - started  # start-up: load everything, listen
        # Keep draining its stdout so that a chatty server never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()
        self.rss: list[tuple[float, int]] = []  # (monotonic time, resident set in kB), once a second
        self.cpu: list[tuple[float, float]] = []  # (monotonic time, CPU seconds used so far), once a second
        threading.Thread(target=self._sample_memory, daemon=True).start()

    def _sample_memory(self) -> None:
        status = Path(f"/proc/{self.proc.pid}/status")
        stat = Path(f"/proc/{self.proc.pid}/stat")
        tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        while self.proc.poll() is None:
            try:
                kb = next(int(line.split()[1]) for line in status.read_text().splitlines()
                          if line.startswith("VmRSS:"))
                # utime and stime: the fields after the command's closing parenthesis, 12th and 13th.
                fields = stat.read_text().rsplit(")", 1)[1].split()
                cpu = (int(fields[11]) + int(fields[12])) / tick
            except (OSError, StopIteration, ValueError, IndexError):
                return  # not Linux, or the process is gone
            now = time.monotonic()
            self.rss.append((now, kb))
            self.cpu.append((now, cpu))
            time.sleep(0.5)

    def cpu_seconds(self, since: float, until: float) -> Optional[tuple[float, float]]:
        """CPU time the server used between two moments (the samples nearest inside them):
        on a shared machine, CPU per reply is steadier than replies per second."""
        run = [(t, c) for t, c in self.cpu if since <= t <= until]
        if len(run) < 2:
            return None
        return run[-1][1] - run[0][1], run[-1][0] - run[0][0]

    def memory(self, since: float, until: float) -> Optional[dict[str, float]]:
        """Resident memory in MB during a load run: at its start, half way, at its end, and the peak."""
        run = [(t, kb) for t, kb in self.rss if since <= t <= until]
        if not run:
            return None
        middle = run[len(run) // 2]
        return {"start": run[0][1] / 1024, "middle": middle[1] / 1024, "end": run[-1][1] / 1024,
                "peak": max(kb for _, kb in run) / 1024}

    def _wait_port(self, pattern: re.Pattern) -> int:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.write(line)
            match = pattern.search(line)
            if match:
                return int(match.group(1))
        self.proc.wait(10)
        self.log.flush()
        raise RuntimeError(f"{self.name} did not start (exit {self.proc.returncode}); see {self.log_path}:\n"
                           + self.log_path.read_text()[-2000:])

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.write(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def start_switch(home: Path, framing_name: str, profile: Optional[Path], log_dir: Path,
                 checkout: Optional[str] = None) -> Server:
    python = [sys.executable]
    if profile is not None:
        python += ["-m", "cProfile", "-o", str(profile)]
    # Any free ports: the console's fixed default would collide with a switch already running.
    argv = python + ["-m", "lems", "serve", "--home", str(home), "--port", "0", "--host", "127.0.0.1",
                     "--console-port", "0"]
    listener = {"stx": "terminals", "length": "interfaces"}[framing_name]
    # --switch-checkout: the switch of another checkout (the version before a change) under the same load.
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [checkout, os.environ.get("PYTHONPATH")]))} if checkout else None
    return Server("switch", argv, rf"LEMS switch listening: {listener} on [\d.]+:(\d+)", log_dir / "switch.log", env)


def start_echo(home: Path, framing_name: str, log_dir: Path) -> Server:
    argv = [sys.executable, "-m", "lems.tools.echo", "--home", str(home), "--port", "0", "--framing", framing_name]
    return Server("echo", argv, r"LEMS echo listening: [\d.]+:(\d+)", log_dir / "echo.log")


def import_records(home: Path) -> dict[str, Any]:
    """``lems records import`` on the bench home, timed (the records' way into the store)."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "lems", "records", "import", "--home", str(home)],
                          capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"lems records import failed:\n{done.stderr[-2000:]}")
    match = re.search(r"([\d,]+) records in ([\d.]+) s \(([\d,]+) records/s\)", done.stdout)
    records = int(match.group(1).replace(",", "")) if match else 0
    rate = int(match.group(3).replace(",", "")) if match else 0
    store = home / "var" / "lems.sqlite"
    size = store.stat().st_size / 2**20 if store.exists() else 0.0
    print(f"  records imported: {records:,} in {seconds:.1f} s ({rate:,} records/s inside the import), "
          f"store {size:,.0f} MB", flush=True)
    return {"records": records, "seconds": seconds, "rate": rate, "store_mb": size}


# -- the command ------------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="load generator and benchmark against the switch and a bare TLS echo server",
                              description=__doc__.splitlines()[0], epilog=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--terminals", type=int, default=10, help="connected terminals (default 10)")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per server (default 10)")
    p.add_argument("--rate", type=float, help="open loop: messages per second in all (default: closed loop)")
    p.add_argument("--records", type=int, default=0,
                   help="extra synthetic records in the home: N wanted persons and N stolen vehicles")
    p.add_argument("--connections", type=int,
                   help="connection-count mode: N terminals connected, heartbeats only (sets --terminals)")
    p.add_argument("--heartbeat", type=float, default=30.0,
                   help="seconds between a terminal's heartbeats in --connections mode (default 30)")
    p.add_argument("--mix", default=DEFAULT_MIX, help=f"message kinds and weights (default {DEFAULT_MIX})")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                   help="load generator processes (default: cores - 1)")
    p.add_argument("--framing", choices=("stx", "length"), default="stx")
    p.add_argument("--plot", help="PNG of latency over time (needs matplotlib: pip install 'lems[plot]')")
    p.add_argument("--profile", help="run the switch under cProfile, write the stats to FILE and print the top")
    p.add_argument("--json", help="write the figures to FILE as JSON")
    p.add_argument("--no-echo", action="store_true", help="measure the switch only")
    p.add_argument("--switch-checkout", metavar="DIR",
                   help="run the switch of another checkout of lems (e.g. the main branch, to compare)")
    p.add_argument("--keep-home", action="store_true", help="keep the temporary home (its path is printed)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.connections is not None:
        if args.connections < 1 or args.heartbeat <= 0:
            return fail("--connections and --heartbeat must be positive", prog="lems bench")
        args.terminals = args.connections
    if args.terminals < 1 or args.seconds <= 0 or (args.rate is not None and args.rate <= 0):
        return fail("--terminals, --seconds and --rate must be positive", prog="lems bench")
    try:
        mix = parse_mix(args.mix)
    except ValueError as exc:
        return fail(str(exc), prog="lems bench")
    workdir = Path(tempfile.mkdtemp(prefix="lems-bench-"))
    home = workdir / "home"
    loop = (f"connections, a heartbeat every {args.heartbeat:g} s" if args.connections
            else f"open loop {args.rate:g} msg/s" if args.rate else "closed loop")
    print(f"lems bench: {args.terminals} terminals ({loop}), {args.seconds:g} s per server, "
          f"{min(args.workers, args.terminals)} load process(es), mix {args.mix}"
          + (f", {args.records} extra wanted and {args.records} extra vehicle records" if args.records else ""),
          flush=True)
    try:
        runs = _measure(args, workdir, home, mix)
    except (RuntimeError, OSError, queue.Empty) as exc:
        return fail(str(exc) or type(exc).__name__, EXIT_REJECT, prog="lems bench")
    finally:
        if args.keep_home:
            print(f"  home kept: {home}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    line = ratio(runs)
    if line:
        print(line)
    if args.plot:
        if plot(Path(args.plot), runs, f"lems bench, {args.terminals} terminals, {loop}"):
            print(f"  plot written to {args.plot}")
        else:
            print("  no plot: matplotlib is not installed", file=sys.stderr)
    if args.json:
        figures = [{k: v for k, v in run.items() if k != "samples"} for run in runs]
        Path(args.json).write_text(json.dumps({"terminals": args.terminals, "seconds": args.seconds,
                                               "rate": args.rate, "mix": args.mix, "runs": figures}, indent=2))
    if args.profile:
        print_profile(Path(args.profile))
    return EXIT_OK


def _measure(args: argparse.Namespace, workdir: Path, home: Path, mix: list[str]) -> list[dict[str, Any]]:
    """Prepare the home, then each server in turn: start it, load it, stop it, print its line."""
    started = time.monotonic()
    terminals = prepare_home(home, args.terminals, args.records)
    print(f"  home {home} ready in {time.monotonic() - started:.1f} s", flush=True)
    imported = import_records(home) if args.records else None
    profile = Path(args.profile).resolve() if args.profile else None
    servers = [("switch", lambda: start_switch(home, args.framing, profile, workdir,
                                               getattr(args, "switch_checkout", None)))]
    if not args.no_echo:
        servers.append(("echo", lambda: start_echo(home, args.framing, workdir)))
    runs: list[dict[str, Any]] = []
    for name, start in servers:
        server = start()
        try:
            began = time.monotonic()
            runs.append(run_load(name, server.port, home, terminals, args, mix))
            runs[-1]["rss_mb"] = server.memory(began, time.monotonic())
            measured = server.cpu_seconds(runs[-1]["measure_start"], runs[-1]["measure_end"])
            if measured and runs[-1]["per_second"]:
                cpu, wall = measured
                runs[-1]["cpu_us_per_reply"] = cpu / (runs[-1]["per_second"] * wall) * 1e6
                runs[-1]["cpu_share"] = cpu / wall
            runs[-1]["ready_seconds"] = server.ready_seconds
            if imported and name == "switch":
                runs[-1]["import"] = imported
        finally:
            server.stop()
        print(describe(runs[-1]), flush=True)
    return runs


if __name__ == "__main__":  # pragma: no cover  (python -m lems.tools.bench is lems bench)
    raise SystemExit(standalone(register, "bench", sys.argv[1:]))
