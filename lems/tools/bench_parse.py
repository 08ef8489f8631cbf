"""Parse benchmark: messages per second for each way of reading the syntax.

    python -m lems.tools.bench_parse [--formats DIR] [--seconds S | --messages N]

Parses a realistic mix (QW hit and no-hit shapes, QV, EW, RQ, DQ, AM, SON)
with the hand-written syntax (the hot path), the interpreted construct grammar
and the compiled construct grammar, and prints messages per second for each.
Each run is bounded by time or by count; the default (1 s each) takes about
3 seconds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from lems.wire.codec import GRAMMARS, Codec

MIX = [
    "QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101",
    "QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101.SEX/M.RAC/W.EDB/1",
    "QW.OR9990100.NAM/NOBODY, NOT A.DOB/19700101.SEX/F",
    "QW.OR9990200.SOC/123456789",
    "QV.OR9990100.LIC/TEST123.LIS/OR",
    "QV.OR9990100.VIN/1TESTVIN000000001",
    "EW.OR9990100.NAM/TESTER, ACCEPT A.SEX/M.RAC/W.DOB/19910203.HGT/510.WGT/170.EYE/BRO.HAI/BRO"
    ".OFF/2399.DOW/20260101.OCA/ACC-0001.MIS/TEST RECORD",
    "RQ.OR9990100.OR.*CTL0000001.TXTLIC/TEST123",
    "DQ.OR9990100.NL.TXTNAM/DOE, JOHN Q.DOB/19800101",
    "AM.OR9990100.OR9990200.*AMCTL00001.TXTPLEASE CALL RECORDS RE CASE ACC-0001",
    "SON.OR9990100.OPR/OP010001.PWD/LemsDemo#2026",
]


def default_formats() -> Path:
    return Path(__file__).resolve().parents[2] / "formats"


def run(codec: Codec, seconds: float, messages: int) -> tuple[int, float]:
    """Parse the mix round-robin until the time or the count runs out; (count, elapsed)."""
    parse = codec.parse
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while done < messages:
        for text in MIX:
            parse(text)
        done += len(MIX)
        if time.perf_counter() >= deadline:
            break
    return done, time.perf_counter() - start


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lems.tools.bench_parse", description=__doc__.splitlines()[0])
    parser.add_argument("--formats", type=Path, default=default_formats(), help="catalogue directory")
    parser.add_argument("--seconds", type=float, default=1.0, help="time per grammar (default 1)")
    parser.add_argument("--messages", type=int, default=10**9, help="stop each run after this many")
    args = parser.parse_args(argv)
    results = {}
    for grammar in GRAMMARS:
        codec = Codec.from_dir(args.formats, grammar)
        run(codec, 0.05, len(MIX))  # warm caches (and compile) before timing
        done, elapsed = run(codec, args.seconds, args.messages)
        results[grammar] = done / elapsed
        print(f"{grammar:<10} {done:>9} messages in {elapsed:6.2f} s  {done / elapsed:>10,.0f} msg/s")
    base = results["hand"]
    for grammar in GRAMMARS[1:]:
        print(f"hand-written syntax is {base / results[grammar]:.1f}x {grammar}")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
