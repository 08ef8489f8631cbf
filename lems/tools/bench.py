"""``lems bench``: load generator and benchmark, switch against a bare TLS echo server.

    lems bench [--terminals N] [--seconds S] [--rate R] [--records N] [--mix SPEC]
               [--workers W] [--plot FILE] [--profile FILE] [--json FILE] [--no-echo]

One run measures two servers under the same load, one after the other, on the
same machine (DESIGN.md, Performance):

1. the switch: ``lems serve`` in its own process on a fresh temporary home
   (``lems.tools.home.init``) and a free port;
2. the reference: ``python -m lems.tools.echo`` in its own process, with the same
   home's certificates and the same framing, echoing every payload back as an
   ``R`` frame with a 32-byte header.

The load comes from ``--workers`` processes (default: one per spare core),
each one Twisted reactor with many mutual-TLS connections.  The home gets
``N`` extra terminals ``TB000001``... (type ``mobile``, so they never idle-lock;
the switch allows one session per terminal) and one operator ``OPBENCH1``
whose password hash is cheap, so that signing 200 terminals on does not take
minutes of scrypt; sign-on is not measured.  Closed loop (default): each
terminal sends, waits for its reply, sends again.  Open loop (``--rate R``):
R messages per second in all, sent on schedule whatever the replies do.

``--mix`` weights the message kinds: ``qw-hit`` (a wanted-person hit with
three records), ``qw-nohit``, ``qv`` (plate hit), ``qg`` (gun hit), ``hbt``,
``ew`` (a unique wanted-person entry; leave it out while the switch has no
route for entries).  ``--records N`` adds N synthetic wanted records to the
home (routes/records/bench-wanted.jsonl) to show that inquiry cost does not
grow with the file.  ``--profile FILE`` runs the switch under cProfile,
writes the stats to FILE and prints where the time went.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing
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
from typing import Any, Optional, Sequence

DEFAULT_MIX = "qw-hit=3,qw-nohit=3,qv=2,qg=1,hbt=1"
BENCH_ORI = "OR9990100"
BENCH_OPERATOR = "OPBENCH1"
BENCH_PASSWORD = "BenchOnly#1"
# scrypt cost of the bench operator's hash: cheap, because sign-on is not what is measured.
BENCH_SCRYPT_N = 2**4
READY_TIMEOUT = 180.0
DRAIN_SECONDS = 5.0


def message(kind: str, ori: str, n: int, worker: int, terminal: int = 0) -> str:
    """The text of one load message of ``kind``; worker, terminal and ``n`` make entries unique."""
    if kind == "qw-hit":
        return f"QW.{ori}.NAM/DOE, JOHN Q.DOB/19800101"
    if kind == "qw-nohit":
        return f"QW.{ori}.NAM/NOBODY, NOT A.DOB/19{70 + n % 30:02d}0101"
    if kind == "qv":
        return f"QV.{ori}.LIC/TEST123.LIS/OR"
    if kind == "qg":
        return f"QG.{ori}.SER/TESTGUN001"
    if kind == "hbt":
        return "HBT"
    if kind == "ew":
        return (f"EW.{ori}.NAM/BENCH, LOAD {chr(65 + worker % 26)}.SEX/M.RAC/W.DOB/19910203.HGT/510.WGT/170"
                f".EYE/BRO.HAI/BRO.OFF/2399.DOW/20260101.OCA/BN{worker:02d}{terminal:03d}{n:07d}.MIS/BENCH RECORD")
    raise ValueError(f"unknown message kind {kind!r}")


KINDS = ("qw-hit", "qw-nohit", "qv", "qg", "hbt", "ew")


def parse_mix(spec: str) -> list[str]:
    """``kind=weight,...`` as a repeating sequence of kinds (weights are small integers)."""
    weights: dict[str, int] = {}
    for part in spec.split(","):
        kind, _, weight = part.strip().partition("=")
        if kind not in KINDS:
            raise ValueError(f"unknown message kind {kind!r} in --mix (known: {', '.join(KINDS)})")
        count = int(weight or 1)
        if count < 0:
            raise ValueError(f"negative weight for {kind} in --mix")
        weights[kind] = weights.get(kind, 0) + count
    # Spread each kind evenly over the cycle, so that a terminal does not send a run of one kind.
    sequence = [kind for _, _, kind in sorted((i / count, KINDS.index(kind), kind)
                                               for kind, count in weights.items() for i in range(count))]
    if not sequence:
        raise ValueError("--mix has no message with a weight above 0")
    return sequence


# -- the home ---------------------------------------------------------------------------------


def prepare_home(home: Path, terminals: int, records: int) -> list[str]:
    """A fresh home with ``terminals`` bench terminals, the bench operator and extra records."""
    import datetime as dt

    import attrs

    from lems.base import credentials
    from lems.net import pki
    from lems.tools import home as home_mod
    from lems.base.conf import Settings
    from lems.base.registry import Operator, Terminal

    registry = home_mod.init(home)
    settings = Settings.load(home)
    ca = pki.Pki(settings.pki_dir)
    today = dt.date.today()
    registry = registry.with_operator(Operator(
        id=BENCH_OPERATOR, ori=BENCH_ORI, level="full",
        password=credentials.hash_password(BENCH_PASSWORD, n=BENCH_SCRYPT_N),
        certified=today - dt.timedelta(days=30), guide_issued=today - dt.timedelta(days=30),
        background_check=today - dt.timedelta(days=30)))
    ids = [f"TB{i:06d}" for i in range(1, terminals + 1)]
    new = [Terminal(id=tid, ori=BENCH_ORI, type="mobile") for tid in ids]
    # One registry write for all of them: issue the certificates first, then register.
    issued = [ca.issue_terminal(t.id, t.ori) for t in new]
    terminals_by_id = dict(registry.terminals)
    for term, cert in zip(new, issued):
        terminals_by_id[term.id] = attrs.evolve(term, fingerprint=cert.fingerprint)
    registry = attrs.evolve(registry, terminals=terminals_by_id)
    registry.check()
    registry.save("terminal")
    if records:
        from lems.files.records import record_to_json, synthetic_records

        # As many wanted persons as stolen vehicles: QW and QV both search a file of the size asked for.
        for file in ("wanted", "vehicle"):
            with open(home / "routes" / "records" / f"bench-{file}.jsonl", "w", encoding="ascii") as out:
                out.writelines(json.dumps(record_to_json(record)) + "\n"
                               for record in synthetic_records(file, records, seed=1))
    return ids


# -- servers in their own processes ---------------------------------------------------------------


class Server:
    """A child process that prints its port on a line matching ``pattern``."""

    def __init__(self, name: str, argv: list[str], pattern: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, "w")
        started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.port = self._wait_port(re.compile(pattern))
        self.ready_seconds = time.monotonic() - started  # start-up: load everything, listen
        # Keep draining its stdout so that a chatty server never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()
        self.rss: list[tuple[float, int]] = []  # (monotonic time, resident set in kB), once a second
        threading.Thread(target=self._sample_memory, daemon=True).start()

    def _sample_memory(self) -> None:
        status = Path(f"/proc/{self.proc.pid}/status")
        while self.proc.poll() is None:
            try:
                kb = next(int(line.split()[1]) for line in status.read_text().splitlines()
                          if line.startswith("VmRSS:"))
            except (OSError, StopIteration, ValueError):
                return  # not Linux, or the process is gone
            self.rss.append((time.monotonic(), kb))
            time.sleep(1.0)

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


def start_switch(home: Path, framing_name: str, profile: Optional[Path], log_dir: Path) -> Server:
    python = [sys.executable]
    if profile is not None:
        python += ["-m", "cProfile", "-o", str(profile)]
    argv = python + ["-m", "lems", "serve", "--home", str(home), "--port", "0", "--host", "127.0.0.1"]
    listener = {"stx": "terminals", "length": "interfaces"}[framing_name]
    return Server("switch", argv, rf"LEMS switch listening: {listener} on [\d.]+:(\d+)", log_dir / "switch.log")


def start_echo(home: Path, framing_name: str, log_dir: Path) -> Server:
    argv = [sys.executable, "-m", "lems.tools.echo", "--home", str(home), "--port", "0", "--framing", framing_name]
    return Server("echo", argv, r"LEMS echo listening: [\d.]+:(\d+)", log_dir / "echo.log")


# -- the load generator (runs in worker processes) --------------------------------------------------


def worker_main(config: dict[str, Any], ready: Any, go: Any, results: Any) -> None:
    """Entry point of one load worker process: one reactor, many terminals."""
    from twisted.internet import defer, reactor

    def finish(outcome: Any) -> None:
        if isinstance(outcome, dict):
            results.put(outcome)
        else:
            results.put({"worker": config["worker"], "error": outcome.getErrorMessage()})
            ready.put(("failed", config["worker"], outcome.getErrorMessage()))
        reactor.stop()

    d = defer.ensureDeferred(_load(reactor, config, ready, go))
    d.addBoth(finish)
    reactor.run(installSignalHandlers=False)


class _Terminal:
    def __init__(self, tid: str, offset: int) -> None:
        self.id = tid
        self.offset = offset  # where in the mix this terminal starts
        self.wire: Any = None
        self.sent: dict[str, float] = {}  # REF -> perf_counter at send
        self.n = 0


async def _load(reactor: Any, config: dict[str, Any], ready: Any, go: Any) -> dict[str, Any]:
    from twisted.internet import defer, task, threads

    from lems.tools.replay import Target

    target = Target(config["host"], config["port"], Path(config["ca"]), Path(config["cert_dir"]),
                    config["framing"])
    mix: list[str] = config["mix"]
    worker = config["worker"]
    seconds = config["seconds"]
    terminals = [_Terminal(tid, i) for i, tid in enumerate(config["terminals"])]
    clock = time.perf_counter
    state: dict[str, Any] = {"measuring": False, "start": 0.0, "end": 0.0}
    samples: list[tuple[float, float]] = []
    codes: dict[str, int] = {}
    signons: dict[str, defer.Deferred] = {}

    def on_frame(term: _Terminal, out: Any) -> None:
        if out.cls not in ("R", "E"):
            return
        if out.ref == "SON":
            d = signons.pop(term.id, None)
            if d is not None:
                d.callback(out)
            return
        sent = term.sent.pop(out.ref, None)
        if sent is None:
            return
        now = clock()
        if out.cls == "E":
            code = out.text[:4]
            codes[code] = codes.get(code, 0) + 1
        if state["measuring"] and now <= state["end"]:
            samples.append((sent - state["start"], (now - sent) * 1000))
            if config["rate"] is None:
                send(term)

    def send(term: _Terminal) -> None:
        kind = mix[(term.n + term.offset) % len(mix)]
        ref = f"{term.n:010d}"
        term.n += 1
        term.sent[ref] = clock()
        term.wire.send(ref, message(kind, BENCH_ORI, term.n, worker, term.offset))

    # Connect in batches: hundreds of simultaneous handshakes only measure the handshake queue.
    failures = []
    for i in range(0, len(terminals), 50):
        batch = terminals[i:i + 50]
        results = await defer.DeferredList(
            [target.connect(reactor, t.id, (lambda out, t=t: on_frame(t, out)), timeout=30) for t in batch],
            consumeErrors=True)
        for term, (ok, result) in zip(batch, results):
            if ok:
                term.wire = result
            else:
                failures.append(f"{term.id}: {result.getErrorMessage()}")
    live = [t for t in terminals if t.wire is not None]
    for term in live:
        signons[term.id] = defer.Deferred()
        term.wire.send("SON", f"SON.{BENCH_ORI}.OPR/{BENCH_OPERATOR}.PWD/{BENCH_PASSWORD}")
    replies = await defer.DeferredList([signons[t.id] for t in live])
    refused = [t.id for t, (_, out) in zip(live, replies) if out.cls != "R"]
    if refused:
        raise RuntimeError(f"sign-on refused for {', '.join(refused[:5])}: {replies[0][1].text[:80]}")
    ready.put(("ready", worker, len(live), failures))
    start_at = await threads.deferToThread(go.get)  # the parent's common start time (perf_counter)
    delay = start_at - clock()
    if delay > 0:
        await task.deferLater(reactor, delay, lambda: None)
    state.update(measuring=True, start=clock(), end=clock() + seconds)
    if config["rate"] is None:
        for term in live:
            send(term)
    else:
        await _open_loop(reactor, live, config["rate"], state, send)
    # Wait for the replies still in flight (they count towards latency, not towards throughput).
    while clock() < state["end"] + DRAIN_SECONDS and any(t.sent for t in live):
        await task.deferLater(reactor, 0.02, lambda: None)
    if clock() < state["end"]:
        await task.deferLater(reactor, state["end"] - clock(), lambda: None)
    state["measuring"] = False
    for term in live:
        term.wire.close()
    await task.deferLater(reactor, 0.1, lambda: None)
    return {"worker": worker, "terminals": len(live), "failures": failures, "samples": samples,
            "codes": codes, "outstanding": sum(len(t.sent) for t in live), "seconds": seconds}


async def _open_loop(reactor: Any, live: list, rate: float, state: dict[str, Any], send: Any) -> None:
    """Send ``rate`` messages per second round-robin, on schedule, until the end."""
    from twisted.internet import task

    sent = 0
    turn = itertools.cycle(live)
    while True:
        now = time.perf_counter()
        if now >= state["end"]:
            return
        due = int((now - state["start"]) * rate) + 1
        while sent < due:
            send(next(turn))
            sent += 1
        await task.deferLater(reactor, 0.002, lambda: None)


# -- one measured run -------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> Optional[float]:
    if not values:
        return None
    index = min(len(values) - 1, max(0, math.ceil(q / 100 * len(values)) - 1))
    return values[index]


def run_load(name: str, port: int, home: Path, terminals: list[str], args: argparse.Namespace,
             mix: list[str]) -> dict[str, Any]:
    """Drive ``terminals`` against ``port`` from the worker processes; the merged figures."""
    from lems.base.conf import Settings

    settings = Settings.load(home)
    ctx = multiprocessing.get_context("spawn")
    ready, go, results = ctx.Queue(), ctx.Queue(), ctx.Queue()
    workers = max(1, min(args.workers, len(terminals)))
    slices = [terminals[i::workers] for i in range(workers)]
    procs = []
    for i, chunk in enumerate(slices):
        config = {"worker": i, "host": "127.0.0.1", "port": port, "ca": str(settings.pki_dir / "ca.crt"),
                  "cert_dir": str(settings.pki_dir / "terminals"), "framing": args.framing, "mix": mix,
                  "seconds": args.seconds, "terminals": chunk,
                  "rate": None if args.rate is None else args.rate / workers}
        proc = ctx.Process(target=worker_main, args=(config, ready, go, results), daemon=True)
        proc.start()
        procs.append(proc)
    try:
        connected, failures = 0, []
        for _ in procs:
            status = ready.get(timeout=READY_TIMEOUT)
            if status[0] != "ready":
                raise RuntimeError(f"{name}: load worker {status[1]} failed: {status[2]}")
            connected += status[2]
            failures += status[3]
        start_at = time.perf_counter() + 0.2
        for _ in procs:
            go.put(start_at)
        outcomes = [results.get(timeout=args.seconds + DRAIN_SECONDS + 60) for _ in procs]
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
    errors = [o["error"] for o in outcomes if "error" in o]
    if errors:
        raise RuntimeError(f"{name}: load worker failed: {errors[0]}")
    samples = sorted((s for o in outcomes for s in o["samples"]), key=lambda s: s[0])
    latencies = sorted(s[1] for s in samples)
    codes: dict[str, int] = {}
    for o in outcomes:
        for code, count in o["codes"].items():
            codes[code] = codes.get(code, 0) + count
    return {"server": name, "terminals": connected, "connect_failures": failures, "seconds": args.seconds,
            "replies": len(samples), "per_second": len(samples) / args.seconds,
            "latency_ms": {f"p{q}": percentile(latencies, q) for q in (50, 95, 99)},
            "max_ms": latencies[-1] if latencies else None,
            "errors": codes, "outstanding": sum(o["outstanding"] for o in outcomes), "samples": samples}


def describe(result: dict[str, Any]) -> str:
    lat = result["latency_ms"]

    def ms(v: Optional[float]) -> str:
        return "-" if v is None else f"{v:.2f}"

    errors = sum(result["errors"].values())
    detail = f" ({', '.join(f'{c} x{n}' for c, n in sorted(result['errors'].items()))})" if errors else ""
    rss = result.get("rss_mb")
    memory = (f"\n          memory MB start {rss['start']:.1f} middle {rss['middle']:.1f} end {rss['end']:.1f} "
              f"peak {rss['peak']:.1f}") if rss else ""
    if "ready_seconds" in result:
        memory += f"\n          started and listening in {result['ready_seconds']:.1f} s"
    return (f"  {result['server']:<7} {result['replies']:>8} replies {result['per_second']:>9.1f} msg/s  "
            f"latency ms p50 {ms(lat['p50'])} p95 {ms(lat['p95'])} p99 {ms(lat['p99'])}  "
            f"errors {errors}{detail}  unanswered {result['outstanding']}{memory}")


def plot(path: Path, runs: list[dict[str, Any]], title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(10, 5))
    for run in runs:
        xs = [s[0] for s in run["samples"]]
        ys = [s[1] for s in run["samples"]]
        ax.plot(xs, ys, ".", markersize=2, alpha=0.5, label=f"{run['server']} ({run['per_second']:.0f} msg/s)")
    ax.set_xlabel("seconds into the run")
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def print_profile(path: Path, limit: int = 25) -> None:
    import pstats

    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(limit)


# -- the command ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lems bench", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--terminals", type=int, default=10, help="connected terminals (default 10)")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per server (default 10)")
    p.add_argument("--rate", type=float, help="open loop: messages per second in all (default: closed loop)")
    p.add_argument("--records", type=int, default=0, help="extra synthetic records in the home: N wanted persons and N stolen vehicles")
    p.add_argument("--mix", default=DEFAULT_MIX, help=f"message kinds and weights (default {DEFAULT_MIX})")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                   help="load generator processes (default: cores - 1)")
    p.add_argument("--framing", choices=("stx", "length"), default="stx")
    p.add_argument("--plot", help="PNG of latency over time (needs matplotlib)")
    p.add_argument("--profile", help="run the switch under cProfile, write the stats to FILE and print the top")
    p.add_argument("--json", help="write the figures to FILE as JSON")
    p.add_argument("--no-echo", action="store_true", help="measure the switch only")
    p.add_argument("--keep-home", action="store_true", help="keep the temporary home (its path is printed)")
    return p


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    if argv[:1] == ["--"]:  # `lems bench -- --option` hands the separator on
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    if args.terminals < 1 or args.seconds <= 0 or (args.rate is not None and args.rate <= 0):
        print("lems bench: --terminals, --seconds and --rate must be positive", file=sys.stderr)
        return 2
    try:
        mix = parse_mix(args.mix)
    except ValueError as exc:
        print(f"lems bench: {exc}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="lems-bench-"))
    home = workdir / "home"
    loop = f"open loop {args.rate:g} msg/s" if args.rate else "closed loop"
    print(f"lems bench: {args.terminals} terminals ({loop}), {args.seconds:g} s per server, "
          f"{min(args.workers, args.terminals)} load process(es), mix {args.mix}"
          + (f", {args.records} extra wanted and {args.records} extra vehicle records" if args.records else ""), flush=True)
    runs: list[dict[str, Any]] = []
    try:
        started = time.monotonic()
        terminals = prepare_home(home, args.terminals, args.records)
        print(f"  home {home} ready in {time.monotonic() - started:.1f} s", flush=True)
        profile = Path(args.profile).resolve() if args.profile else None
        servers = [("switch", lambda: start_switch(home, args.framing, profile, workdir))]
        if not args.no_echo:
            servers.append(("echo", lambda: start_echo(home, args.framing, workdir)))
        for name, start in servers:
            server = start()
            try:
                began = time.monotonic()
                runs.append(run_load(name, server.port, home, terminals, args, mix))
                runs[-1]["rss_mb"] = server.memory(began, time.monotonic())
                runs[-1]["ready_seconds"] = server.ready_seconds
            finally:
                server.stop()
            print(describe(runs[-1]), flush=True)
    except (RuntimeError, OSError, queue.Empty) as exc:
        print(f"lems bench: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    finally:
        if args.keep_home:
            print(f"  home kept: {home}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if len(runs) == 2 and runs[1]["per_second"]:
        switch, echo = runs
        p99 = (switch["latency_ms"]["p99"] or 0) / (echo["latency_ms"]["p99"] or 1)
        print(f"  ratio switch/echo: throughput {switch['per_second'] / echo['per_second']:.2f}, "
              f"p99 latency {p99:.1f}x")
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
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
