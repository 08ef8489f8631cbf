"""A bare mutual-TLS line echo: the yardstick ``lems bench`` measures the switch against.

    python -m lems.tools.echo --home DIR [--host H] [--port N] [--framing stx|length]

Same reactor, same TLS (the home's switch certificate, client certificates
required and checked against the home's CA) and the same framing as the
switch; each frame that comes in goes straight back out, the same frame byte
for byte.  Nothing else: no header, time stamp, parsing, authorisation,
lookup or journal, so the ratio switch/echo is the switch against what a
transport alone can do (the limit).  The load generator knows it is talking
to the echo and reads the input header of the frame that comes back.  Prints
``LEMS echo listening: HOST:PORT`` and runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from twisted.internet import protocol

from lems.wire import framing


class Echo(protocol.Protocol):
    def __init__(self, framing_name: str) -> None:
        self.framer = framing.FRAMERS[framing_name]()
        self.encode = framing.FRAMERS[framing_name].encode

    def dataReceived(self, data: bytes) -> None:
        # The framer is the one piece of work a transport must do: a frame is echoed only whole.
        out = [self.encode(event.payload) for event in self.framer.feed(data) if isinstance(event, framing.Frame)]
        if out:
            self.transport.write(b"".join(out))


class EchoFactory(protocol.ServerFactory):
    def __init__(self, framing_name: str) -> None:
        self.framing = framing_name

    def buildProtocol(self, addr: Any) -> Echo:
        return Echo(self.framing)


def listen(reactor: Any, home: Path, port: int = 0, host: str = "127.0.0.1", framing_name: str = "stx") -> Any:
    """Listen with the home's switch certificate and CA; returns the listening port."""
    from lems.net import pki
    from lems.base.conf import Settings

    settings = Settings.load(Path(home))
    context = pki.server_context_factory(pki.Pki(settings.pki_dir))
    return reactor.listenSSL(port, EchoFactory(framing_name), context, interface=host, backlog=1024)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lems.tools.echo", description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=".", help="the LEMS home whose certificates to use")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--framing", choices=tuple(framing.FRAMERS), default="stx")
    args = parser.parse_args(list(argv))
    from twisted.internet import reactor

    listening = listen(reactor, Path(args.home), args.port, args.host, args.framing)
    print(f"LEMS echo listening: {args.host}:{listening.getHost().port} ({args.framing} framing)", flush=True)
    reactor.run()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
