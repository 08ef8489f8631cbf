"""The dealers' HTTPS interface (PROTOCOL.md 10): the JSON API under /fics/v1 and the portal at /fics/.

twisted.web, in the switch's reactor, with the switch certificate
(``pki.web_context_factory``: the terminal listeners' TLS versions, suites and
groups, without client certificates).  The checks themselves are
``lems.core.fics``; this module only speaks HTTP:

* status codes: 201 check made, 200, 400 body not JSON, 401 missing or wrong
  key, 403 dealer suspended or revoked, 404 no such transaction of this dealer,
  405, 413 body over ``[dealer] max_body_bytes`` (not kept), 422 fields missing
  or invalid (each named; nothing stored), 429 over the dealer's rate
  (``Retry-After``);
* the portal: a session cookie (``HttpOnly; Secure; SameSite=Strict``) after
  signing in with the dealer id and key, a CSRF token in every form (the
  sign-in form's bound to a pre-session cookie), pages rendered here with no
  resource from outside the switch.

Every request that changed the store commits before its answer leaves.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from typing import Any, Optional

import structlog
from twisted.web import resource, server

from lems.core import fics as fics_mod
from lems.net import dealer_pages as pages

log = structlog.get_logger("lems.net.dealer_web")

API = "/fics/v1/"
IDLE_SECONDS = 60  # an idle keep-alive connection is closed after this (Twisted's default is 12 hours)
SESSION_COOKIE = b"fics_session"
PRE_COOKIE = b"fics_pre"
_TXN_PATH = re.compile(r"^/fics/v1/checks/([^/]+)$")
_PORTAL_CHECK = re.compile(r"^/fics/check/([^/]+)$")


class LimitedRequest(server.Request):
    """A request whose body is kept only up to the site's ``max_body`` bytes (then 413)."""

    too_large = False
    _body_bytes = 0

    def gotLength(self, length: Optional[int]) -> None:
        limit = self.channel.site.max_body
        if length is not None and length > limit:
            self.too_large = True
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.too_large:
            return
        self._body_bytes += len(data)
        if self._body_bytes > self.channel.site.max_body:
            self.too_large = True
            self.content.seek(0)
            self.content.truncate()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self.too_large:
            # No form parsing of a body that was not kept.
            self.requestHeaders.removeHeader(b"content-type")
        super().requestReceived(command, path, version)


class DealerSite(server.Site):
    requestFactory = LimitedRequest
    displayTracebacks = False

    def __init__(self, root: resource.Resource, max_body: int, **kw: Any) -> None:
        kw.setdefault("timeout", IDLE_SECONDS)
        super().__init__(root, **kw)
        self.max_body = max_body

    def log(self, request: Any) -> None:  # the switch journals what matters; no access log lines
        pass


class PortalSessions:
    """Signed-in portal sessions, in memory (a restart signs everyone out)."""

    def __init__(self, clock: Any, minutes: float) -> None:
        self.clock = clock
        self.seconds = minutes * 60
        self.sessions: dict[str, dict[str, Any]] = {}
        self.secret = secrets.token_bytes(32)

    def new(self, dealer_id: str) -> str:
        self._expire()
        token = secrets.token_urlsafe(32)
        self.sessions[token] = {"dealer": dealer_id, "csrf": secrets.token_urlsafe(24),
                                "seen": self.clock.monotonic()}
        return token

    def get(self, token: Optional[str]) -> Optional[dict[str, Any]]:
        if not token:
            return None
        found = self.sessions.get(token)
        now = self.clock.monotonic()
        if found is None:
            return None
        if now - found["seen"] > self.seconds:
            del self.sessions[token]
            return None
        found["seen"] = now
        return found

    def end(self, token: Optional[str]) -> None:
        if token:
            self.sessions.pop(token, None)

    def end_dealer(self, dealer_id: str) -> None:
        for token in [t for t, s in self.sessions.items() if s["dealer"] == dealer_id]:
            del self.sessions[token]

    def _expire(self) -> None:
        now = self.clock.monotonic()
        for token in [t for t, s in self.sessions.items() if now - s["seen"] > self.seconds]:
            del self.sessions[token]

    def pre_csrf(self, pre: str) -> str:
        """The sign-in form's token, bound to the visitor's pre-session cookie."""
        return hmac.new(self.secret, pre.encode(), hashlib.sha256).hexdigest()


class DealerInterface(resource.Resource):
    """Every path under the listener: /fics/v1/... (JSON) and /fics/... (the portal)."""

    isLeaf = True

    def __init__(self, switch: Any, server_url: str = "https://127.0.0.1:7743") -> None:
        super().__init__()
        self.switch = switch
        self.server_url = server_url
        self.portal = PortalSessions(switch.clock, switch.settings.dealer.session_minutes)
        # Portal sign-in attempts per client address: 10 at once, then one a second.
        self.sign_ins = fics_mod.Buckets(switch.clock, 1.0, 10)

    @property
    def fics(self) -> fics_mod.Fics:
        return self.switch.fics

    # -- plumbing -------------------------------------------------------------------

    def render(self, request: Any) -> bytes:
        request.setHeader(b"server", b"LEMS FICS")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"referrer-policy", b"no-referrer")
        path = request.path.decode("utf-8", "replace")
        method = request.method.decode("ascii", "replace").upper()
        try:
            if request.too_large:
                request.setHeader(b"connection", b"close")
                return self._error(request, 413, f"request body larger than "
                                                 f"{self.switch.settings.dealer.max_body_bytes} bytes")
            if path.startswith(API) or path == API.rstrip("/"):
                return self._api(request, method, path)
            if path == "/fics" or path.startswith("/fics/"):
                return self._portal(request, method, path)
            return self._error(request, 404, "not found; the interface is under /fics/v1/ and the portal at /fics/")
        except Exception:  # noqa: BLE001 - never a traceback to a dealer; the turn is dropped
            log.exception("dealer interface request failed", path=path, method=method)
            self.switch.store.rollback()
            return self._error(request, 500, "internal error; nothing was stored")

    @staticmethod
    def _json(request: Any, code: int, body: Any) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        return (json.dumps(body, indent=None, separators=(",", ":")) + "\n").encode("utf-8")

    def _error(self, request: Any, code: int, message: str) -> bytes:
        return self._json(request, code, {"error": message, "status": code})

    def _dealer(self, request: Any) -> tuple[Optional[Any], Optional[bytes]]:
        """The authenticated dealer, or the 401/403/429 answer."""
        header = (request.getHeader(b"authorization") or b"").decode("latin-1").strip()
        scheme, _, key = header.partition(" ")
        if not header or scheme.lower() != "bearer" or not key.strip():
            request.setHeader(b"www-authenticate", b'Bearer realm="fics"')
            return None, self._error(request, 401, "missing API key: send Authorization: Bearer <key>")
        dealer = self.fics.authenticate(key.strip())
        if dealer is None:
            request.setHeader(b"www-authenticate", b'Bearer realm="fics", error="invalid_token"')
            return None, self._error(request, 401, "wrong API key")
        if dealer.status != "active":
            return None, self._error(request, 403, f"dealer {dealer.id} is {dealer.status}")
        try:
            self.fics.take(dealer)
        except fics_mod.TooMany as exc:
            request.setHeader(b"retry-after", str(exc.retry_after).encode())
            return None, self._error(request, 429, f"too many requests; retry after {exc.retry_after} s")
        return dealer, None

    # -- the JSON API ---------------------------------------------------------------

    def _api(self, request: Any, method: str, path: str) -> bytes:
        if path == "/fics/v1/openapi.json":
            if method not in ("GET", "HEAD"):
                return self._not_allowed(request, "GET")
            return self._json(request, 200, pages.openapi(self.server_url))
        if path in ("/fics/v1/checks", "/fics/v1/checks/"):
            if method not in ("GET", "POST"):
                return self._not_allowed(request, "GET, POST")
            dealer, refused = self._dealer(request)
            if refused is not None:
                return refused
            return self._submit(request, dealer) if method == "POST" else self._list(request, dealer)
        m = _TXN_PATH.match(path)
        if m:
            if method not in ("GET", "HEAD"):
                return self._not_allowed(request, "GET")
            dealer, refused = self._dealer(request)
            if refused is not None:
                return refused
            check = self.fics.get(m.group(1)) if fics_mod.TXN.match(m.group(1).upper()) else None
            if check is None or check.dealer != dealer.id:
                return self._error(request, 404, f"no transaction {m.group(1)} for dealer {dealer.id}")
            return self._json(request, 200, check.to_json())
        return self._error(request, 404, "no such endpoint; see /fics/v1/openapi.json")

    def _not_allowed(self, request: Any, allow: str) -> bytes:
        request.setHeader(b"allow", allow.encode())
        return self._error(request, 405, f"method not allowed; use {allow}")

    def _submit(self, request: Any, dealer: Any) -> bytes:
        raw = request.content.read()
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self._error(request, 400, "the body is not JSON (UTF-8)")
        check, errors = self._run(dealer, body)
        if check is None:
            return self._json(request, 422, {"errors": [err.to_json() for err in errors]})
        request.setHeader(b"location", f"/fics/v1/checks/{check.txn}".encode())
        return self._json(request, 201, check.to_json())

    def _run(self, dealer: Any, body: Any) -> tuple[Optional[fics_mod.Check], list[fics_mod.FieldError]]:
        """Validate and run one check; commits.  (None, errors) stores nothing."""
        today = self.switch.today()
        request, errors = fics_mod.validate(body, today)
        if request is None:
            return None, errors
        check = self.fics.run(dealer, request)
        self.switch.store.commit()
        return check, []

    def _list(self, request: Any, dealer: Any) -> bytes:
        wanted = request.args.get(b"status", [None])[-1]
        status = None
        if wanted is not None:
            status = wanted.decode("utf-8", "replace").strip().lower()
            if status not in fics_mod.STATUSES:
                return self._json(request, 422, {"errors": [{"field": "status", "reason": "must be one of: "
                                                             + ", ".join(fics_mod.STATUSES)}]})
        checks = self.fics.of_dealer(dealer.id, status)
        return self._json(request, 200, {"checks": [c.to_json() for c in checks]})

    # -- the portal ------------------------------------------------------------------

    def _html(self, request: Any, text: str, code: int = 200) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"content-security-policy",
                          b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                          b"frame-ancestors 'none'; base-uri 'none'")
        request.setHeader(b"x-frame-options", b"DENY")
        return text.encode("utf-8")

    @staticmethod
    def _cookie(request: Any, name: bytes, value: str, max_age: Optional[int] = None) -> None:
        # Written whole: Twisted's addCookie would spell the attribute value "strict".
        cookie = name + b"=" + value.encode("ascii") + b"; Path=/fics/; Secure; HttpOnly; SameSite=Strict"
        if max_age is not None:
            cookie += b"; Max-Age=" + str(max_age).encode()
        request.cookies.append(cookie)

    def _redirect(self, request: Any, where: str) -> bytes:
        request.setResponseCode(303)
        request.setHeader(b"location", where.encode())
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"see " + where.encode() + b"\n"

    def _form(self, request: Any) -> dict[str, str]:
        out = {}
        for key, values in request.args.items():
            out[key.decode("utf-8", "replace")] = values[-1].decode("utf-8", "replace").strip()
        return out

    def _signed_in(self, request: Any) -> tuple[Optional[str], Optional[dict], Optional[Any]]:
        raw = request.getCookie(SESSION_COOKIE)
        token = raw.decode("ascii", "replace") if raw else None
        session = self.portal.get(token)
        if session is None:
            return token, None, None
        dealer = self.fics.dealers.get(session["dealer"])
        if dealer is None or dealer.status != "active":  # suspended or revoked: signed out at once
            self.portal.end(token)
            return token, None, None
        return token, session, dealer

    def _pre(self, request: Any) -> str:
        raw = request.getCookie(PRE_COOKIE)
        pre = raw.decode("ascii", "replace") if raw else ""
        if not re.fullmatch(r"[A-Za-z0-9_\-]{20,64}", pre):
            pre = secrets.token_urlsafe(24)
            self._cookie(request, PRE_COOKIE, pre)
        return pre

    def _portal(self, request: Any, method: str, path: str) -> bytes:
        if path == "/fics":
            return self._redirect(request, "/fics/")
        if path == "/fics/portal.css":
            request.setHeader(b"content-type", b"text/css; charset=utf-8")
            return pages.CSS.encode("utf-8")
        token, session, dealer = self._signed_in(request)
        if path == "/fics/signin" and method == "POST":
            return self._sign_in(request)
        if session is None:
            if path == "/fics/" and method in ("GET", "HEAD"):
                return self._html(request, pages.sign_in(self.portal.pre_csrf(self._pre(request))))
            if method == "POST":
                return self._html(request, pages.sign_in(self.portal.pre_csrf(self._pre(request)),
                                                         "Your session ended; please sign in again."), 401)
            return self._redirect(request, "/fics/")
        if method == "POST":
            form = self._form(request)
            if not hmac.compare_digest(form.get("csrf", ""), session["csrf"]):
                return self._html(request, pages.page("Refused", "<section><h2>Refused</h2><p>The form was not "
                                                      "this session's (CSRF token). <a href=\"/fics/\">Back</a></p>"
                                                      "</section>"), 403)
            if path == "/fics/signout":
                self.portal.end(token)
                self._cookie(request, SESSION_COOKIE, "", max_age=0)
                return self._redirect(request, "/fics/")
            if path == "/fics/check":
                return self._portal_check(request, dealer, session, form)
            return self._html(request, pages.not_found(), 404)
        if path == "/fics/":
            return self._html(request, pages.dashboard(dealer, session["csrf"], self.fics.of_dealer(dealer.id,
                                                                                                     limit=20)))
        m = _PORTAL_CHECK.match(path)
        if m:
            check = self.fics.get(m.group(1)) if fics_mod.TXN.match(m.group(1).upper()) else None
            if check is None or check.dealer != dealer.id:
                return self._html(request, pages.not_found(), 404)
            return self._html(request, pages.result(dealer, session["csrf"], check))
        return self._html(request, pages.not_found(), 404)

    def _sign_in(self, request: Any) -> bytes:
        form = self._form(request)
        pre = self._pre(request)
        try:
            self.sign_ins.take(getattr(request.getClientAddress(), "host", ""))
        except fics_mod.TooMany as exc:
            request.setHeader(b"retry-after", str(exc.retry_after).encode())
            return self._html(request, pages.sign_in(self.portal.pre_csrf(pre), f"Too many sign-in attempts; "
                                                     f"wait {exc.retry_after} seconds."), 429)
        if not hmac.compare_digest(form.get("csrf", ""), self.portal.pre_csrf(pre)):
            return self._html(request, pages.sign_in(self.portal.pre_csrf(pre),
                                                     "The sign-in form expired; please try again."), 403)
        dealer_id = (form.get("dealer_id") or form.get("dealer") or "").upper()
        dealer = self.fics.authenticate(form.get("key", ""))
        if dealer is None or dealer.id != dealer_id:
            self.switch.audit("security", None, event="FICS PORTAL SIGN-IN FAILED", operator=dealer_id[:20] or None,
                              remote=_peer(request))
            self.switch.store.commit()
            return self._html(request, pages.sign_in(self.portal.pre_csrf(pre), "Wrong dealer id or key.",
                                                     dealer_id), 401)
        if dealer.status != "active":
            return self._html(request, pages.sign_in(self.portal.pre_csrf(pre),
                                                     f"Dealer {dealer.id} is {dealer.status}.", dealer_id), 403)
        self._cookie(request, SESSION_COOKIE, self.portal.new(dealer.id))
        self.switch.audit("security", None, event="FICS PORTAL SIGN-IN", operator=dealer.id, remote=_peer(request))
        self.switch.store.commit()
        return self._redirect(request, "/fics/")

    def _portal_check(self, request: Any, dealer: Any, session: dict, form: dict) -> bytes:
        try:
            self.fics.take(dealer)
        except fics_mod.TooMany as exc:
            request.setHeader(b"retry-after", str(exc.retry_after).encode())
            return self._html(request, pages.dashboard(dealer, session["csrf"], self.fics.of_dealer(dealer.id, limit=20),
                                                       form, [f"Too many checks at once; wait {exc.retry_after} "
                                                              "seconds and submit again."]), 429)
        check, errors = self._run(dealer, pages.form_to_body(form))
        if check is None:
            problems = [f"{pages.label_of(err.field)}: {err.reason}" for err in errors]
            return self._html(request, pages.dashboard(dealer, session["csrf"], self.fics.of_dealer(dealer.id, limit=20),
                                                       form, problems), 422)
        return self._redirect(request, f"/fics/check/{check.txn}")


def _peer(request: Any) -> str:
    peer = request.getClientAddress()
    return f"{getattr(peer, 'host', '')}:{getattr(peer, 'port', '')}"


def site(switch: Any, server_url: str) -> DealerSite:
    return DealerSite(DealerInterface(switch, server_url), switch.settings.dealer.max_body_bytes)
