"""``lems bench``, the load: message kinds, the mix, and the worker processes that send them.

Each worker process is one Twisted reactor with many mutual-TLS terminals
(``lems.tools.target``).  Closed loop (default): each terminal sends, waits for
its reply, sends again.  Open loop (``rate``): that many messages per second in
all, sent on schedule whatever the replies do.  Connections (``heartbeat``):
every terminal stays connected and sends only a heartbeat every ``heartbeat``
seconds, the terminals spread evenly over the interval.  ``run_load`` starts
the workers, starts them measuring at one common moment and merges what they saw.

Against the pure echo (``lems.tools.echo``) a reply is the input frame itself,
so the terminals read its input header (``echo_reply``).
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path
from typing import Any

import attrs

from lems.tools.bench_home import BENCH_OPERATOR, BENCH_ORI, BENCH_PASSWORD
from lems.tools.latency import percentiles

DEFAULT_MIX = "qw-hit=3,qw-nohit=3,qv=2,qg=1,hbt=1"
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


# -- the load generator (runs in worker processes) --------------------------------------------------


@attrs.frozen
class EchoReply:
    """What the pure echo sends back, read as the switch's reply would be (class R)."""

    ref: str
    text: str
    cls: str = "R"


def echo_reply(payload: bytes) -> EchoReply:
    from lems.wire.headers import Input

    inp = Input.from_wire(payload)
    return EchoReply(inp.ref, inp.text)


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

    from lems.tools.target import Target
    from lems.wire.headers import Output

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
            if config["rate"] is None and not config.get("heartbeat"):
                send(term)

    def send(term: _Terminal) -> None:
        kind = "hbt" if config.get("heartbeat") else mix[(term.n + term.offset) % len(mix)]
        ref = f"{term.n:010d}"
        term.n += 1
        term.sent[ref] = clock()
        term.wire.send(ref, message(kind, BENCH_ORI, term.n, worker, term.offset))

    # Connect in batches: hundreds of simultaneous handshakes only measure the handshake queue.
    failures = []
    parse = echo_reply if config.get("echo") else Output.from_wire
    size = config.get("batch", 50)
    for i in range(0, len(terminals), size):
        batch = terminals[i:i + size]
        results = await defer.DeferredList(
            [target.connect(reactor, t.id, (lambda out, t=t: on_frame(t, out)), timeout=60, parse=parse)
             for t in batch], consumeErrors=True)
        for term, (ok, result) in zip(batch, results):
            if ok:
                term.wire = result
            else:
                failures.append(f"{term.id}: {result.getErrorMessage()}")
    live = [t for t in terminals if t.wire is not None]
    replies = []
    for i in range(0, len(live), size):
        batch = live[i:i + size]
        for term in batch:
            signons[term.id] = defer.Deferred()
            term.wire.send("SON", f"SON.{BENCH_ORI}.OPR/{BENCH_OPERATOR}.PWD/{BENCH_PASSWORD}")
        replies += await defer.DeferredList([signons[t.id] for t in batch])
    refused = [t.id for t, (_, out) in zip(live, replies) if out.cls != "R"]
    if refused:
        raise RuntimeError(f"sign-on refused for {', '.join(refused[:5])}: {replies[0][1].text[:80]}")
    ready.put(("ready", worker, len(live), failures))
    start_at = await threads.deferToThread(go.get)  # the parent's common start time (perf_counter)
    delay = start_at - clock()
    if delay > 0:
        await task.deferLater(reactor, delay, lambda: None)
    state.update(measuring=True, start=clock(), end=clock() + seconds)
    if config.get("heartbeat"):
        await _heartbeats(live, config["heartbeat"], config["worker"], config["workers"], state, send)
    elif config["rate"] is None:
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


async def _heartbeats(live: list, every: float, worker: int, workers: int, state: dict[str, Any],
                      send: Any) -> None:
    """Each terminal sends a heartbeat every ``every`` seconds, all terminals (of all the
    workers) spread evenly over the interval, until the end."""
    from twisted.internet import reactor, task

    count = max(len(live) * workers, 1)
    start = state["start"]
    # Terminal j of worker w is terminal j * workers + w of all: its first beat is at that share of the
    # interval.  Every terminal has the same interval, so the order of the beats never changes: a
    # pointer walks the terminals round and round (a tick costs the beats it sends, not 10,000 checks).
    due = [start + every * ((j * workers + worker) / count) for j in range(len(live))]
    if not live:
        return
    at = 0
    while True:
        now = time.perf_counter()
        if now >= state["end"]:
            return
        while due[at] <= now:
            send(live[at])
            due[at] += every
            at = (at + 1) % len(live)
        await task.deferLater(reactor, 0.005, lambda: None)


# -- one measured run -------------------------------------------------------------------------------


def run_load(name: str, port: int, home: Path, terminals: list[str], args: argparse.Namespace,
             mix: list[str]) -> dict[str, Any]:
    """Drive ``terminals`` against ``port`` from the worker processes; the merged figures."""
    import multiprocessing

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
                  "seconds": args.seconds, "terminals": chunk, "echo": name == "echo",
                  "heartbeat": getattr(args, "heartbeat", None) if getattr(args, "connections", None) else None,
                  "workers": workers, "batch": 200 if getattr(args, "connections", None) else 50,
                  "rate": None if args.rate is None else args.rate / workers}
        proc = ctx.Process(target=worker_main, args=(config, ready, go, results), daemon=True)
        proc.start()
        procs.append(proc)
    try:
        connected, failures = 0, []
        for _ in procs:
            status = ready.get(timeout=READY_TIMEOUT + 0.05 * len(terminals))
            if status[0] != "ready":
                raise RuntimeError(f"{name}: load worker {status[1]} failed: {status[2]}")
            connected += status[2]
            failures += status[3]
        start_at = time.perf_counter() + 0.2
        measure_start = time.monotonic() + 0.2
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
    latencies = [s[1] for s in samples]
    codes: dict[str, int] = {}
    for o in outcomes:
        for code, count in o["codes"].items():
            codes[code] = codes.get(code, 0) + count
    return {"server": name, "terminals": connected, "connect_failures": failures, "seconds": args.seconds,
            "replies": len(samples), "per_second": len(samples) / args.seconds,
            "latency_ms": percentiles(latencies),
            "max_ms": max(latencies, default=None),
            "errors": codes, "outstanding": sum(o["outstanding"] for o in outcomes), "samples": samples,
            "measure_start": measure_start, "measure_end": measure_start + args.seconds}
