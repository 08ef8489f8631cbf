"""``lems replay``: play a capture against a switch and compare the replies (PROTOCOL.md 7).

    lems replay FILE [--home DIR | --host H --port N --ca CA --cert-dir DIR]
                     [--speed N | --max] [--report FILE] [--framing stx|length]
                     [--password PW] [--credentials FILE]

One mutual-TLS connection per terminal in the capture (certificate
``<cert-dir>/<TERMINAL>.crt`` and ``.key``), all on one Twisted reactor.

Order.  The ``in`` frames are sent in capture order.  An input waits for every
reply that the capture shows arriving before it was sent (on any terminal), so
an entry's reply is back before the modify that uses its NIC, at any speed; on
top of that, the recorded pace (``t``) is kept, scaled by ``--speed``, unless
``--max`` is given.

Matching.  An ``R``/``E`` frame answers the oldest unanswered input of its
terminal with the same REF.  ``U``/``S`` frames, and ``R``/``E`` frames that
answer no input in the capture, are unsolicited: they are compared per
terminal, in order, after the last input (the switch sends them when it
likes, so they are not tied to a particular input).

What may differ.  OSN and TS are not in a capture.  NICs (``NIC/`` + letter +
9 digits) may differ but must differ consistently: the first time a recorded
NIC meets a live one, the pair is learned, later inputs that carry the recorded
NIC are sent with the live one, and later replies must show the same pair.
Entry dates (``DTE/``) on records entered during the capture, the times, dates
and sequence numbers in the three-line Nlets reply header, and the warning
lines of ``SIGN-ON ACCEPTED`` (they depend on today's date) are not compared.

Life-cycle frames.  What the switch says about its own life and the session's
(the banner, ``SWITCH SHUTTING DOWN``, ``SESSION REPLACED ...``, the idle lock
and disconnect notices; ``lems.wire.capture.LifeCycle``) is not compared, on
either side: a capture taken through a shutdown or a reconnection replays
without a false mismatch.  Frames marked ``"life": true`` are such frames;
frames without the mark (older captures, journal exports) are told by the same
rule; the report counts both sides under ``life_cycle``.

Secrets.  Captures and journal exports hold sign-ons as ``PWD/*`` and
``OTP/*`` (PROTOCOL.md 4 item 4).  Each such ``SON`` is sent with the password
of its operator from ``--credentials FILE`` (lines ``OPERATOR PASSWORD
[TOTP-SECRET]``, ``#`` comments), else ``--password PW``; an ``OTP/*`` is sent
as the code of the operator's TOTP secret from the file at the moment it is
sent (a recorded code cannot be replayed: it was good for 30 seconds).  A
capture that needs a password or secret nobody gave is refused before anything
is sent, naming the operators.  A ``SON`` recorded in clear (a capture from
before masking) is sent as recorded.  The report and the summary show inputs as
recorded, masked.

Everything else is: each mismatch says why (missing reply, unexpected reply,
different class, different code, different line with both lines, different
NIC, a bad frame that is not an output header).  Exit status 1 on any mismatch
or failed connection, 0 otherwise.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import attrs

from lems.tools.args import EXIT_OK, fail, standalone
from lems.tools.latency import latency_line, percentiles
from lems.wire import capture as capture_mod
from lems.wire import framing
from lems.wire.headers import Output
from lems.wire.secrets import MASKED

if TYPE_CHECKING:
    from twisted.internet import defer

    from lems.tools.target import Target, Wire

# Twisted (and lems.tools.target, which needs it) is imported where it is used:
# `lems` builds this command's parser on every run, and `lems send` should not
# pay for the reactor.

EXIT_MISMATCH = 1

# -- comparing one reply ----------------------------------------------------------------------

NIC = re.compile(r"NIC/([A-Z][0-9]{9})")
DTE = re.compile(r"DTE/[0-9]{8}")
CODE = re.compile(r"^(\.[0-9]{2}\.)")
# First line of an Nlets reply header: reply key, period, answering ORI.
NLETS_HEADER = re.compile(r"^[A-Z]{2,4}\.[A-Z0-9]{9}$")
NUMBER = re.compile(r"(?<![^\s])[0-9][0-9:./-]*(?![^\s])")
ENTRY_KEY = re.compile(r"^E[A-Z]{0,3}\.")


class NicMap:
    """Recorded NIC -> live NIC, learned as replies are compared; consistent both ways."""

    def __init__(self) -> None:
        self.live: dict[str, str] = {}
        self.recorded: dict[str, str] = {}
        self.created: set[str] = set()  # NICs (recorded and live) given out by entries during the replay

    def substitute(self, text: str) -> str:
        return NIC.sub(lambda m: "NIC/" + self.live.get(m.group(1), m.group(1)), text)

    def pair(self, rec: str, live: str) -> Optional[str]:
        known = self.live.get(rec)
        if known is not None and known != live:
            return f"NIC/{rec} was NIC/{known} earlier in this replay, here NIC/{live}"
        other = self.recorded.get(live)
        if other is not None and other != rec:
            return f"live NIC/{live} already stood for recorded NIC/{other}, here for NIC/{rec}"
        self.live[rec], self.recorded[live] = live, rec
        return None


def _normalised(lines: list[str], created: set[str]) -> list[str]:
    out = []
    header_left = 0
    for line in lines:
        if header_left:
            line = NUMBER.sub("#", line)  # time, date and sequence in an Nlets header line
            header_left -= 1
        elif NLETS_HEADER.match(line):
            header_left = 2
        if any(nic in created for nic in NIC.findall(line)):
            line = DTE.sub("DTE/#", line)
        out.append(NIC.sub("NIC/#", line))
    return out


@attrs.frozen
class Difference:
    kind: str
    reason: str


def compare(recorded: dict[str, Any], live: Output, nics: NicMap, input_text: str = "") -> Optional[Difference]:
    """Why ``live`` is not the recorded frame, or None when it is (modulo what may change)."""
    if recorded["cls"] != live.cls:
        return Difference("different class", f"class {recorded['cls']} recorded, {live.cls} live "
                                              f"(recorded {_first(recorded['text'])!r}, live {_first(live.text)!r})")
    rec_lines, live_lines = recorded["text"].split("\n"), live.text.split("\n")
    rec_code, live_code = CODE.match(rec_lines[0]), CODE.match(live_lines[0])
    if (rec_code and rec_code.group(1)) != (live_code and live_code.group(1)):
        return Difference("different code", f"code {rec_code.group(1) if rec_code else 'none'} recorded, "
                                            f"{live_code.group(1) if live_code else 'none'} live "
                                            f"(recorded {rec_lines[0]!r}, live {live_lines[0]!r})")
    if rec_lines[0].startswith("SIGN-ON ACCEPTED"):
        rec_lines, live_lines = rec_lines[:1], live_lines[:1]  # warnings depend on today's date
    if ENTRY_KEY.match(input_text) and recorded["cls"] == "R":
        # Both sides' numbers: a line is normalised on its own side.
        nics.created.update(NIC.findall(recorded["text"]) + NIC.findall(live.text))
    rec_norm, live_norm = _normalised(rec_lines, nics.created), _normalised(live_lines, nics.created)
    for i, (a, b) in enumerate(zip(rec_norm, live_norm)):
        if a != b:
            return Difference("different line", f"line {i + 1} differs: recorded {rec_lines[i]!r}, "
                                                f"live {live_lines[i]!r}")
    if len(rec_norm) != len(live_norm):
        longer, which = (rec_lines, "recorded") if len(rec_lines) > len(live_lines) else (live_lines, "live")
        n = min(len(rec_lines), len(live_lines))
        return Difference("different line", f"{len(rec_lines)} lines recorded, {len(live_lines)} live; "
                                            f"line {n + 1} only {which}: {longer[n]!r}")
    for rec_line, live_line in zip(rec_lines, live_lines):
        for rec_nic, live_nic in zip(NIC.findall(rec_line), NIC.findall(live_line)):
            problem = nics.pair(rec_nic, live_nic)
            if problem:
                return Difference("different NIC", problem)
    return None


def _first(text: str) -> str:
    return text.split("\n", 1)[0]


# -- sign-on secrets ------------------------------------------------------------------------------

_SON = re.compile(r"^\s*SON\s*(?:\.|$)", re.IGNORECASE)
_OPR = re.compile(r"(?:^|\.)\s*OPR\s*/([^.]*)", re.IGNORECASE)
_MASKED = {code: re.compile(rf"(?:^|(?<=\.))\s*{code}\s*/{re.escape(MASKED)}(?=\.|$)", re.IGNORECASE)
           for code in ("PWD", "OTP")}


class CredentialsError(ValueError):
    """A credentials file line that is not ``OPERATOR PASSWORD [TOTP-SECRET]``, or a secret nobody gave."""


@attrs.frozen
class Credentials:
    """What the replay signs operators on with: per operator from a file, else one password."""

    passwords: dict[str, str] = attrs.Factory(dict)
    totp: dict[str, str] = attrs.Factory(dict)
    default: Optional[str] = None

    @classmethod
    def load(cls, path: Optional[str], default: Optional[str] = None) -> "Credentials":
        passwords: dict[str, str] = {}
        totp: dict[str, str] = {}
        if path:
            with open(path, encoding="utf-8") as lines:
                for number, line in enumerate(lines, 1):
                    words = line.split()
                    if not words or words[0].startswith("#"):
                        continue
                    if len(words) not in (2, 3):
                        raise CredentialsError(f"{path}:{number}: a line is OPERATOR PASSWORD [TOTP-SECRET]")
                    passwords[words[0].upper()] = words[1]
                    if len(words) == 3:
                        from lems.base.credentials import decode_secret

                        try:
                            decode_secret(words[2])
                        except ValueError as exc:
                            raise CredentialsError(f"{path}:{number}: {exc}") from None
                        totp[words[0].upper()] = words[2]
        return cls(passwords, totp, default)

    @staticmethod
    def needs(text: str) -> tuple[str, bool, bool]:
        """(operator, password masked, code masked) of a recorded input; ("", False, False) if none."""
        if not _SON.match(text):
            return "", False, False
        opr = _OPR.search(text)
        operator = opr.group(1).strip().upper() if opr else ""
        return operator, bool(_MASKED["PWD"].search(text)), bool(_MASKED["OTP"].search(text))

    def missing(self, texts: list[str]) -> list[str]:
        """What the capture needs that was not given, one phrase per operator."""
        wanted: dict[str, set[str]] = collections.defaultdict(set)
        for text in texts:
            operator, pwd, otp = self.needs(text)
            if pwd and operator not in self.passwords and self.default is None:
                wanted[operator].add("a password")
            if otp and operator not in self.totp:
                wanted[operator].add("a TOTP secret")
        return [f"{op or '(no OPR)'} needs {' and '.join(sorted(what))}" for op, what in sorted(wanted.items())]

    def fill(self, text: str, now: Callable[[], float] = time.time) -> str:
        """The recorded text with ``PWD/*`` and ``OTP/*`` put back (anything else as it is)."""
        operator, pwd, otp = self.needs(text)
        if pwd:
            password = self.passwords.get(operator, self.default)
            if password is not None:
                text = _MASKED["PWD"].sub(lambda _: f"PWD/{password}", text)
        if otp and operator in self.totp:
            from lems.base.credentials import totp_now  # cryptography: only when a code is needed

            code = totp_now(self.totp[operator], now())
            text = _MASKED["OTP"].sub(lambda _: f"OTP/{code}", text)
        return text


# -- the replay ----------------------------------------------------------------------------------


@attrs.define(eq=False)
class Step:
    """One recorded input and what became of it."""

    pos: int  # line index in the capture
    terminal: str
    ref: str
    text: str
    t: float
    expected: Optional[dict[str, Any]] = None
    reply_pos: Optional[int] = None
    sent_text: str = ""
    sent_at: Optional[float] = None
    live: Optional[Output] = None
    replied_at: Optional[float] = None
    finished: bool = False
    waiters: list = attrs.Factory(list)
    timer: Any = None

    def wait(self) -> defer.Deferred:
        from twisted.internet import defer

        if self.finished:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self.waiters.append(d)
        return d

    def finish(self) -> None:
        if not self.finished:
            self.finished = True
            if self.timer is not None and self.timer.active():
                self.timer.cancel()
            waiters, self.waiters = self.waiters, []
            for d in waiters:
                d.callback(None)


class Replay:
    def __init__(self, frames: list[dict[str, Any]], target: Target, speed: Optional[float] = 1.0,
                 timeout: float = 10.0, settle: float = 1.0, progress: Optional[Any] = None,
                 credentials: Optional[Credentials] = None) -> None:
        self.target = target
        self.credentials = credentials or Credentials()
        self.speed = speed  # None: as fast as the dependencies allow (--max)
        self.timeout = timeout
        self.settle = settle
        self.progress = progress  # a text stream for the progress line, or None
        self.steps: list[Step] = []
        self.recorded_unsolicited: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        self.live_unsolicited: dict[str, list[Output]] = collections.defaultdict(list)
        self.terminals: list[str] = []
        self.nics = NicMap()
        self.mismatches: list[dict[str, Any]] = []
        self.wires: dict[str, Wire] = {}
        self.outstanding: dict[tuple[str, str], collections.deque[Step]] = collections.defaultdict(collections.deque)
        self.compared = 0
        self.differing = 0  # compared frames that did not match
        self.started = self.ended = 0.0
        # Life-cycle frames (PROTOCOL.md 7) are counted, not compared.
        self.life_cycle = {"recorded": 0, "live": 0}
        self.live_life = capture_mod.LifeCycle()
        recorded_life = capture_mod.LifeCycle()
        waiting: dict[tuple[str, str], collections.deque[Step]] = collections.defaultdict(collections.deque)
        for pos, frame in enumerate(frames):
            terminal = frame["terminal"]
            if terminal not in self.terminals:
                self.terminals.append(terminal)
            if frame["dir"] == "in":
                step = Step(pos, terminal, frame["ref"], frame["text"], float(frame["t"]))
                self.steps.append(step)
                waiting[(terminal, frame["ref"])].append(step)
                continue
            life = recorded_life(terminal, frame["cls"], frame["ref"], frame["text"])  # sees every out frame
            if frame.get("life", life):  # the capture's mark, else the rule
                self.life_cycle["recorded"] += 1
            elif frame["cls"] in ("R", "E") and waiting[(terminal, frame["ref"])]:
                step = waiting[(terminal, frame["ref"])].popleft()
                step.expected, step.reply_pos = frame, pos
            else:
                self.recorded_unsolicited[terminal].append(frame)

    # -- bookkeeping --------------------------------------------------------------------

    def _mismatch(self, kind: str, reason: str, terminal: str, ref: str = "", input_text: Optional[str] = None,
                  recorded: Optional[str] = None, live: Optional[str] = None) -> None:
        self.mismatches.append({"terminal": terminal, "ref": ref, "input": input_text, "kind": kind,
                                "reason": reason, "recorded": recorded, "live": live})

    def _frame(self, terminal: str, out: Output, now: Callable[[], float]) -> None:
        if self.live_life(terminal, out.cls, out.ref, out.text):
            self.life_cycle["live"] += 1
            return
        queue = self.outstanding.get((terminal, out.ref)) if out.cls in ("R", "E") else None
        if not queue:
            self.live_unsolicited[terminal].append(out)
            return
        step = queue.popleft()
        step.live, step.replied_at = out, now()
        if step.expected is None:
            self._mismatch("unexpected reply", f"no reply was recorded for this input; live {out.cls} "
                                               f"{_first(out.text)!r}", terminal, step.ref, step.sent_text,
                           None, out.text)
        else:
            self.compared += 1
            diff = compare(step.expected, out, self.nics, step.text)
            if diff is not None:
                self.differing += 1
                self._mismatch(diff.kind, diff.reason, terminal, step.ref, step.sent_text,
                               step.expected["text"], out.text)
        step.finish()

    def _bad_frame(self, terminal: str, payload: bytes, reason: str) -> None:
        """A frame that is not an output header answers nothing; it is a mismatch of its own."""
        self._mismatch("bad frame", reason, terminal, live=payload.decode("ascii", "replace"))

    def _expire(self, step: Step) -> None:
        if not step.finished:
            self._mismatch("missing reply", f"no reply within {self.timeout:g} s; recorded {step.expected['cls']} "
                                            f"{_first(step.expected['text'])!r}", step.terminal, step.ref,
                           step.sent_text, step.expected["text"], None)
            # A late reply must not be taken for the answer to a later input with this REF.
            queue = self.outstanding.get((step.terminal, step.ref))
            if queue and step in queue:
                queue.remove(step)
            step.finish()

    # -- running ----------------------------------------------------------------------------

    async def run(self, reactor: Any) -> dict[str, Any]:
        from twisted.internet import defer, task

        now = reactor.seconds
        connected = await defer.DeferredList(
            [self.target.connect(reactor, t, (lambda out, t=t: self._frame(t, out, now)), timeout=self.timeout,
                                 on_bad=(lambda payload, reason, t=t: self._bad_frame(t, payload, reason)))
             for t in self.terminals], consumeErrors=True)
        for terminal, (ok, result) in zip(self.terminals, connected):
            if ok:
                self.wires[terminal] = result
            else:
                self._mismatch("connection failed", f"cannot connect terminal {terminal}: "
                                                    f"{result.getErrorMessage()}", terminal)
        ticker = None
        if self.progress is not None:
            ticker = task.LoopingCall(self._show_progress, now)
            ticker.clock = reactor
            ticker.start(0.5, now=False)
        self.started = now()
        try:
            await self._send_all(reactor, now)
            await defer.DeferredList([s.wait() for s in self.steps])
            last = max([s.replied_at for s in self.steps if s.replied_at] or [now()])
            self.ended = last
            await self._settle(reactor)
        finally:
            if ticker is not None:
                ticker.stop()
                self._show_progress(now, final=True)
            for wire in self.wires.values():
                wire.close()
        self._compare_unsolicited()
        return self.report()

    async def _send_all(self, reactor: Any, now: Callable[[], float]) -> None:
        from twisted.internet import task

        by_reply = sorted((s for s in self.steps if s.reply_pos is not None), key=lambda s: s.reply_pos)
        done = 0
        for step in self.steps:
            # Causality: replies recorded before this input was sent must be back first.
            while done < len(by_reply) and by_reply[done].reply_pos < step.pos:
                await by_reply[done].wait()
                done += 1
            if self.speed is not None:
                delay = self.started + step.t / self.speed - now()
                if delay > 0:
                    await task.deferLater(reactor, delay, lambda: None)
            wire = self.wires.get(step.terminal)
            step.sent_text = self.nics.substitute(step.text)
            if wire is None or not wire.open:
                if step.expected is not None:
                    self._mismatch("missing reply", f"terminal {step.terminal} is not connected; recorded "
                                                    f"{step.expected['cls']} {_first(step.expected['text'])!r}",
                                   step.terminal, step.ref, step.sent_text, step.expected["text"], None)
                step.finish()
                continue
            self.outstanding[(step.terminal, step.ref)].append(step)
            step.sent_at = now()
            # sent_text (what the report shows) stays masked; the wire gets the secrets.
            wire.send(step.ref, self.credentials.fill(step.sent_text))
            if step.expected is not None:
                step.timer = reactor.callLater(self.timeout, self._expire, step)
            else:
                step.finish()  # nothing recorded to wait for; a live reply is still reported

    async def _settle(self, reactor: Any) -> None:
        """Give unsolicited traffic (and replies nobody recorded) a moment to arrive."""
        from twisted.internet import task

        deadline = reactor.seconds() + self.settle
        while reactor.seconds() < deadline:
            if all(len(self.live_unsolicited[t]) >= len(self.recorded_unsolicited[t]) for t in self.terminals):
                await task.deferLater(reactor, min(0.1, self.settle), lambda: None)
                break
            await task.deferLater(reactor, 0.02, lambda: None)

    def _compare_unsolicited(self) -> None:
        for terminal in self.terminals:
            recorded, live = self.recorded_unsolicited[terminal], self.live_unsolicited[terminal]
            for i, (rec, out) in enumerate(zip(recorded, live)):
                diff = compare(rec, out, self.nics)
                self.compared += 1
                if diff is not None:
                    self.differing += 1
                    self._mismatch(diff.kind, f"unsolicited frame {i + 1}: {diff.reason}", terminal, out.ref,
                                   None, rec["text"], out.text)
            for rec in recorded[len(live):]:
                self._mismatch("missing unsolicited", f"recorded {rec['cls']} frame {_first(rec['text'])!r} "
                                                      "never arrived", terminal, rec["ref"], None, rec["text"], None)
            for out in live[len(recorded):]:
                self._mismatch("unexpected unsolicited", f"live {out.cls} frame {_first(out.text)!r} was not "
                                                         "recorded", terminal, out.ref, None, None, out.text)

    def _show_progress(self, now: Callable[[], float], final: bool = False) -> None:
        sent = sum(1 for s in self.steps if s.sent_at is not None)
        answered = sum(1 for s in self.steps if s.live is not None)
        line = (f"replay: {now() - self.started:6.1f} s  sent {sent}/{len(self.steps)}  replies {answered}  "
                f"mismatches {len(self.mismatches)}")
        if self.progress.isatty():
            self.progress.write("\r" + line + ("\n" if final else ""))
        elif final or int((now() - self.started) * 2) % 10 == 0:
            self.progress.write(line + "\n")
        self.progress.flush()

    def report(self) -> dict[str, Any]:
        latencies = [(s.replied_at - s.sent_at) * 1000 for s in self.steps
                     if s.replied_at is not None and s.sent_at is not None]
        elapsed = max(self.ended - self.started, 1e-9)
        replies = len(latencies)
        return {
            "terminals": len(self.terminals),
            "frames": sum(1 for s in self.steps if s.sent_at is not None),
            "inputs": len(self.steps),
            "replies": replies,
            "compared": self.compared,
            "matched": self.compared - self.differing,
            "mismatched": len(self.mismatches),
            "life_cycle": dict(self.life_cycle),
            "elapsed_s": round(elapsed, 3),
            "throughput_per_s": round(replies / elapsed, 1) if replies else 0.0,
            "latency_ms": {p: (round(v, 2) if v is not None else None) for p, v in percentiles(latencies).items()},
            "mismatches": self.mismatches,
        }


def summary(report: dict[str, Any]) -> str:
    lines = [f"{m['terminal']} {m['ref'] or '-'}: {m['kind']}: {m['reason']}" for m in report["mismatches"]]
    lines.append(f"replay: {report['terminals']} terminals, {report['frames']} frames sent, "
                 f"{report['compared']} replies compared, {report['matched']} matched, "
                 f"{report['mismatched']} mismatched; "
                 f"{report.get('life_cycle', {}).get('recorded', 0)} recorded life-cycle frames not compared; "
                 f"{report['throughput_per_s']:.1f} replies/s; "
                 f"{latency_line(report['latency_ms'], 1)}")
    lines.append("replay: OK" if not report["mismatched"] else "replay: MISMATCH")
    return "\n".join(lines)


def run_in_reactor(reactor: Any, frames: list[dict[str, Any]], target: Target, **options: Any) -> defer.Deferred:
    """Start a replay on a running reactor; the Deferred fires with the report."""
    from twisted.internet import defer

    return defer.ensureDeferred(Replay(frames, target, **options).run(reactor))


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("replay", help="replay a capture against a switch and compare the replies (PROTOCOL.md 7)",
                              description=__doc__.splitlines()[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="capture (JSON Lines, PROTOCOL.md 7)")
    p.add_argument("--home", help="LEMS home: its first listener and its PKI (default: current directory)")
    p.add_argument("--host", help="switch address (default: the home's listener)")
    p.add_argument("--port", type=int, help="switch port (default: the home's listener)")
    p.add_argument("--ca", help="CA certificate (PEM) the switch's certificate chains to")
    p.add_argument("--cert-dir", help="directory with <TERMINAL>.crt and <TERMINAL>.key")
    p.add_argument("--framing", choices=tuple(framing.FRAMERS), help="framing (default: the listener's, or stx)")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=1.0, help="play N times faster than recorded (default 1)")
    pace.add_argument("--max", action="store_true", help="as fast as the replies allow")
    p.add_argument("--report", help="write the JSON report to FILE")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each reply (default 10)")
    p.add_argument("--settle", type=float, default=1.0,
                   help="seconds to wait for unsolicited frames after the last reply (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--password", help="password for every masked sign-on (PWD/*) not in --credentials")
    p.add_argument("--credentials", metavar="FILE",
                   help="lines OPERATOR PASSWORD [TOTP-SECRET]: each operator's password (and TOTP secret for OTP/*)")
    p.set_defaults(func=run)


def target_from_args(args: argparse.Namespace) -> Target:
    from lems.tools.target import Target

    if args.ca or args.cert_dir:
        if not (args.ca and args.cert_dir and args.port):
            raise ValueError("--ca, --cert-dir and --port go together (or give --home)")
        return Target(args.host or "127.0.0.1", args.port, Path(args.ca), Path(args.cert_dir), args.framing or "stx")
    return Target.from_home(Path(args.home or "."), args.host, args.port, args.framing)


def run(args: argparse.Namespace) -> int:
    if args.speed is not None and args.speed <= 0:
        return fail("--speed must be positive", prog="lems replay")
    try:
        frames = list(capture_mod.read(args.file))
        secrets = Credentials.load(args.credentials, args.password)
        missing = secrets.missing([f["text"] for f in frames if f["dir"] == "in"])
        if missing:
            raise CredentialsError(f"{args.file} signs on with masked secrets (PWD/*, OTP/*): "
                                   f"{'; '.join(missing)}; give --password PW or --credentials FILE "
                                   "(lines OPERATOR PASSWORD [TOTP-SECRET])")
        target = target_from_args(args)
    except (OSError, ValueError) as exc:
        return fail(str(exc), prog="lems replay")
    from twisted.internet import reactor

    outcome: dict[str, Any] = {}

    def start() -> None:
        d = run_in_reactor(reactor, frames, target, speed=None if args.max else args.speed,
                           timeout=args.timeout, settle=args.settle, progress=None if args.quiet else sys.stderr,
                           credentials=secrets)
        d.addCallbacks(lambda r: outcome.update(report=r), lambda f: outcome.update(error=f))
        d.addBoth(lambda _: reactor.callLater(0.05, reactor.stop))  # let the closes go out

    reactor.callWhenRunning(start)
    started = time.monotonic()
    reactor.run()
    if "error" in outcome:
        return fail(outcome["error"].getErrorMessage(), prog="lems replay")
    report = outcome["report"]
    report["capture"] = str(args.file)
    report["wall_s"] = round(time.monotonic() - started, 3)
    print(summary(report))
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    return EXIT_MISMATCH if report["mismatched"] else EXIT_OK


if __name__ == "__main__":  # pragma: no cover  (python -m lems.tools.replay is lems replay)
    raise SystemExit(standalone(register, "replay", sys.argv[1:]))
