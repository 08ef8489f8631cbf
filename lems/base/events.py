"""The vocabulary the layers speak: what a session asks the link to do, the
input being handled, and what a route step answers.

* ``Send``, ``Close``, ``CheckPassword``: actions a session returns for the link
  to carry out (write a numbered frame, hang up, verify a password off the
  reactor thread).
* ``Transaction``: one input from a signed-on operator, frozen, as every route
  step receives it (like a jPOS participant's context, but immutable).
* ``Notice``: a frame for a terminal other than as a reply (delivered traffic,
  locate and hit confirmation notices, the sender's ``.02.``); the core carries
  it out: written at once to a connected terminal, else kept in its queue.
* ``Outcome``: what a step answers: the reply's class and text and the notices
  to deliver before the reply leaves (and ``Note``s: journal records in their
  place among them).

Values only; nothing here does anything.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Protocol, Union

import attrs

if TYPE_CHECKING:  # pragma: no cover
    from lems.base.registry import Operator, Registry, Terminal


# -- actions for the link -------------------------------------------------------------


@attrs.frozen
class Send:
    """Write one output frame (already numbered, stamped and journaled)."""

    payload: bytes
    osn: int
    cls: str


@attrs.frozen
class Close:
    """Hang up after what has been written."""

    reason: str


@attrs.frozen
class CheckPassword:
    """Verify a sign-on's password off the reactor thread; answer with the token."""

    token: int
    stored: str
    password: str


Action = Union[Send, Close, CheckPassword]


# -- the transaction and its outcome -------------------------------------------------------


class Presence(Protocol):
    """Which terminals are connected now (the core's hub)."""

    def connected(self, terminal_id: str) -> bool: ...  # pragma: no cover


# Queue priorities of notices: lower goes first (PROTOCOL.md 4.9).
PRIORITY_STATUS = 0       # SM
PRIORITY_HIT = 1          # YQ, YR and hit confirmation notices
PRIORITY_ORDINARY = 2     # AM, AML to named ORIs; notices (.02., locate)
PRIORITY_BROADCAST = 3    # AM, AML to a state, NL or a group


@attrs.frozen
class Notice:
    """One frame for one terminal, delivered by the core before the reply.

    ``keep``: the terminal acknowledges its frames (``ack = true``), so the
    frame stays in its queue with its OSN until ``ACK``.
    """

    terminal: str
    ori: str
    cls: str
    text: str
    priority: int = PRIORITY_ORDINARY
    ref: str = ""
    keep: bool = False


@attrs.frozen
class Note:
    """A journal record a step or timer asks for at its place among the notices
    (a notice that reached nobody is journaled after the frames before it)."""

    kind: str
    fields: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Transaction:
    """One input being handled, as every route step sees it."""

    terminal: "Terminal"
    operator: "Operator"
    message: Any              # lems.wire.message.Message
    spec: Any                 # lems.wire.catalogue.KeySpec of the message key
    ref: str
    received: dt.datetime     # switch clock, when the input was read
    registry: "Registry"      # the registry in force when it arrived
    presence: Presence
    session: str = ""         # the session id (journal)
    input_seq: int = 0        # the input's journal sequence number


@attrs.frozen
class Outcome:
    """A step's answer: the reply and the notices to deliver before it.

    ``render``, when given, builds the reply text from the reply's own output
    sequence number (an Nlets-style header prints it); ``text`` is then unused.
    """

    cls: str
    text: str = ""
    notices: tuple[Union[Notice, Note], ...] = ()
    render: Optional[Callable[[int], str]] = attrs.field(default=None, eq=False)

    def text_for(self, osn: int) -> str:
        return self.render(osn) if self.render is not None else self.text
