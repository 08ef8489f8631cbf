"""Load: 200 terminals at once with mixed traffic, through the benchmark tool.

The switch runs in its own process (``lems bench`` starts it); 200 mutual-TLS
terminals in closed loop send QW hits and no-hits, QV, QG, heartbeats and
entries.  Every terminal must connect and sign on, every message must be
answered, and none may be answered with an error.  Throughput, latency and
memory are measured with the same command over a sustained minute and
reported in docs/PERFORMANCE.md, not asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys


def test_two_hundred_terminals_mixed_traffic_no_errors(tmp_path):
    report = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "lems", "bench", "--terminals", "200", "--seconds", "8",
                           "--no-echo", "--mix", "qw-hit=3,qw-nohit=3,qv=2,qg=1,hbt=1,ew=1",
                           "--json", str(report)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = json.loads(report.read_text())["runs"]
    assert run["terminals"] == 200 and not run["connect_failures"], run
    assert run["errors"] == {}, run["errors"]
    assert run["outstanding"] == 0
    assert run["replies"] > 200
    assert run["rss_mb"] is not None
