"""``lems dealer add`` and ``lems dealer bench``: firearms dealers (PROTOCOL.md 10).

``add`` registers a dealer in terminals/dealers.toml with a new API key, prints
the key once and keeps only its SHA-256 (lems.base.dealers says why), then
announces the change in the store so a running switch takes it at once
(PROTOCOL.md 8).

``bench`` measures checks per second against a running switch's dealer
interface: N checks over HTTPS (keep-alive connections, one per worker), each
running the four searches of a check, with the demo dealer's key unless
``--key`` is given.
"""

from __future__ import annotations

import argparse
import re

from lems.tools.args import EXIT_OK, add_home, fail, home_of

_NAME = re.compile(r"^[\x20-\x7e]{1,60}$")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("dealer", help="firearms dealers of the instant check interface")
    actions = p.add_subparsers(dest="dealer_command", required=True, metavar="ACTION")
    q = actions.add_parser("add", help="register a firearms dealer and print its API key (once)")
    q.add_argument("dealer", help="dealer id: D and 7 digits")
    q.add_argument("--ffl", required=True, help="federal firearms licence number, e.g. 9-93-999-01-2A-00001")
    q.add_argument("--name", required=True, help="the dealer's business name")
    add_home(q)
    q.set_defaults(func=dealer_add)
    q = actions.add_parser("bench", help="checks per second against the running switch's dealer interface")
    add_home(q)
    q.add_argument("--checks", type=int, default=300, help="how many checks to submit (default 300)")
    q.add_argument("--workers", type=int, default=4, help="connections submitting at once (default 4)")
    q.add_argument("--key", default="demo-dealer-key-2026", help="the dealer's API key (default: the demo's)")
    q.add_argument("--port", type=int, help="the dealer interface's port (default: the running switch's)")
    q.set_defaults(func=dealer_bench)


def dealer_add(args: argparse.Namespace) -> int:
    from lems.base.clock import SystemClock, stamp
    from lems.base.conf import Settings
    from lems.base.dealers import Dealer, Dealers, hash_key, new_key
    from lems.base.registry import RegistryError
    from lems.store import Store

    settings = Settings.load(home_of(args))
    dealers = Dealers.load(settings.home / "terminals")
    dealer_id = args.dealer.strip().upper()
    if dealers.get(dealer_id) is not None:
        return fail(f"dealer {dealer_id} is already registered")
    name = " ".join(args.name.split()).upper()
    if not _NAME.match(name):
        return fail("--name must be 1-60 printable ASCII characters")
    key = new_key()
    dealer = Dealer(dealer_id, args.ffl.strip().upper(), name, hash_key(key))
    problem = dealer.problem()
    if problem:
        return fail(problem)
    try:
        dealers.with_dealer(dealer)
    except RegistryError as exc:
        return fail(str(exc))
    store = Store.open(settings.store_path)
    try:
        store.announce_registry_change(f"DEALER {dealer_id} ADDED", stamp(SystemClock().now()))
    finally:
        store.close()
    print(f"dealer {dealer_id} {name} FFL {dealer.ffl} registered in {dealers.path}; a running switch accepts it now")
    print("API key (shown only this once, only its hash is kept; send it as `Authorization: Bearer <key>`):")
    print(key)
    return EXIT_OK


def dealer_bench(args: argparse.Namespace) -> int:
    import http.client
    import json
    import ssl
    import threading
    import time

    from lems.base import running
    from lems.base.conf import Settings

    settings = Settings.load(home_of(args))
    address = running.listener(settings.home, "dealer")
    host, port = address or (settings.dealer.host, settings.dealer.port)
    if args.port is not None:
        port = args.port
    if args.checks < 1 or args.workers < 1:
        return fail("--checks and --workers must be at least 1")
    context = ssl.create_default_context(cafile=str(settings.pki_dir / "ca.crt"))
    body = {"dealer_reference": "BENCH", "buyer": {"last_name": "CLEAN", "first_name": "CAROL", "middle_name": "C",
                                                   "dob": "1990-09-09", "sex": "F", "id_type": "DL",
                                                   "id_number": "BENCH1", "id_state": "OR"},
            "firearms": [{"type": "handgun", "make": "TEST", "model": "BENCH", "caliber": "9MM",
                          "serial": "BENCH0001"}]}
    data = json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {args.key}", "Content-Type": "application/json"}
    codes: dict[int, int] = {}
    latencies: list[float] = []
    lock = threading.Lock()
    share = [args.checks // args.workers + (1 if i < args.checks % args.workers else 0) for i in range(args.workers)]
    deadline = time.monotonic() + 300  # bounded: the bench stops by itself

    def work(n: int) -> None:
        conn = http.client.HTTPSConnection(host, port, context=context, timeout=30)
        try:
            for _ in range(n):
                if time.monotonic() > deadline:
                    return
                started = time.perf_counter()
                conn.request("POST", "/fics/v1/checks", body=data, headers=headers)
                reply = conn.getresponse()
                reply.read()
                took = time.perf_counter() - started
                with lock:
                    codes[reply.status] = codes.get(reply.status, 0) + 1
                    latencies.append(took)
        finally:
            conn.close()

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in share if n]
    started = time.perf_counter()
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    except OSError as exc:
        return fail(f"cannot reach the dealer interface at {host}:{port}: {exc}")
    elapsed = time.perf_counter() - started
    done = sum(codes.values())
    if not done:
        return fail(f"no check answered by {host}:{port}")
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    print(f"{done} checks in {elapsed:.2f} s over {len(threads)} connection(s): {done / elapsed:.1f} checks/s "
          f"(each four searches: QW, QH, QPP, QG); latency p50 {p50:.1f} ms p99 {p99:.1f} ms")
    print("status codes: " + ", ".join(f"{code} x{n}" for code, n in sorted(codes.items())))
    if 429 in codes:
        print("note: 429 means the dealer's [dealer] request rate limit answered; raise requests_per_second "
              "and request_burst in a bench home to measure the pipeline")
    return EXIT_OK if set(codes) == {201} else 1
