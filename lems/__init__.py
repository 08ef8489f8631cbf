"""LEMS emulator: a law enforcement message switch for terminal vendors to test against.

The engine is sans-IO from framing to routing (see DESIGN.md); only lems.net.link,
lems.net.service, lems.tools.client and the console touch the Twisted reactor.
"""

__version__ = "0.1.0"
