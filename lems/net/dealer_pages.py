"""What the dealer interface shows: the OpenAPI description and the portal's HTML and CSS.

Server-rendered, self-contained (no script, no font, no image, nothing from
outside the switch), readable on a counter's small screen.  Every value that
comes from a request or the store is escaped here.
"""

from __future__ import annotations

import html
import re
from typing import Any, Iterable, Optional

from lems.core.fics import FIREARM_TYPES, MAX_FIREARMS, RACES, SEXES, STATUSES

PORTAL_ROWS = 3  # firearm rows on the portal's form


def openapi(server: str = "https://127.0.0.1:7743") -> dict[str, Any]:
    """OpenAPI 3 description of /fics/v1 (PROTOCOL.md 10)."""
    def text(limit: int, **kw: Any) -> dict[str, Any]:
        return {"type": "string", "maxLength": limit, **kw}

    error = {"$ref": "#/components/schemas/Error"}
    json_of = lambda schema: {"application/json": {"schema": schema}}  # noqa: E731
    common = {
        "401": {"description": "missing or wrong API key", "content": json_of(error)},
        "403": {"description": "the dealer is suspended or revoked", "content": json_of(error)},
        "429": {"description": "over the dealer's request rate; retry after the Retry-After header's seconds",
                "headers": {"Retry-After": {"schema": {"type": "integer"}}}, "content": json_of(error)},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "LEMS emulator - firearms instant check (FICS) dealer interface", "version": "1",
                 "description": ("Background checks for firearm transfers by licensed dealers (ORS 166.412), "
                                 "as emulated by the LEMS test switch. Test data only.")},
        "servers": [{"url": server}],
        "security": [{"bearer": []}],
        "paths": {
            "/fics/v1/checks": {
                "post": {
                    "summary": "Submit a background check",
                    "operationId": "submitCheck",
                    "requestBody": {"required": True, "content": json_of({"$ref": "#/components/schemas/CheckRequest"})},
                    "responses": {
                        "201": {"description": "the check, decided or pending",
                                "headers": {"Location": {"schema": {"type": "string"}}},
                                "content": json_of({"$ref": "#/components/schemas/Check"})},
                        "400": {"description": "the body is not JSON (UTF-8)", "content": json_of(error)},
                        "413": {"description": "the body is larger than the switch accepts", "content": json_of(error)},
                        "422": {"description": "missing or invalid fields, each named; nothing was stored",
                                "content": json_of({"$ref": "#/components/schemas/ValidationErrors"})},
                        **common,
                    },
                },
                "get": {
                    "summary": "The dealer's own checks, newest first",
                    "operationId": "listChecks",
                    "parameters": [{"name": "status", "in": "query", "required": False,
                                    "schema": {"type": "string", "enum": list(STATUSES)}}],
                    "responses": {
                        "200": {"description": "the checks", "content": json_of(
                            {"type": "object", "required": ["checks"],
                             "properties": {"checks": {"type": "array",
                                                       "items": {"$ref": "#/components/schemas/Check"}}}})},
                        "422": {"description": "unknown status", "content": json_of(
                            {"$ref": "#/components/schemas/ValidationErrors"})},
                        **common,
                    },
                },
            },
            "/fics/v1/checks/{transaction}": {
                "get": {
                    "summary": "One check as it stands now",
                    "operationId": "getCheck",
                    "parameters": [{"name": "transaction", "in": "path", "required": True,
                                    "schema": {"type": "string", "pattern": r"^F\d{4}-\d{6}$"}}],
                    "responses": {
                        "200": {"description": "the check", "content": json_of({"$ref": "#/components/schemas/Check"})},
                        "404": {"description": "no such transaction of this dealer", "content": json_of(error)},
                        **common,
                    },
                },
            },
            "/fics/v1/openapi.json": {
                "get": {"summary": "This description", "operationId": "openapi", "security": [],
                        "responses": {"200": {"description": "OpenAPI 3 document"}}},
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "the dealer's API key (lems dealer add)"}},
            "schemas": {
                "CheckRequest": {
                    "type": "object", "additionalProperties": False,
                    "required": ["dealer_reference", "buyer", "firearms"],
                    "properties": {
                        "dealer_reference": text(64, description="the dealer's own reference (may be empty)"),
                        "buyer": {"$ref": "#/components/schemas/Buyer"},
                        "firearms": {"type": "array", "minItems": 1, "maxItems": MAX_FIREARMS,
                                     "items": {"$ref": "#/components/schemas/Firearm"}},
                    },
                },
                "Buyer": {
                    "type": "object", "additionalProperties": False,
                    "required": ["last_name", "first_name", "dob", "sex", "id_type", "id_number", "id_state"],
                    "properties": {
                        "last_name": text(28, minLength=1, pattern="^[A-Za-z][A-Za-z '\\-]*$"),
                        "first_name": text(28, minLength=1, pattern="^[A-Za-z][A-Za-z '\\-]*$"),
                        "middle_name": {**text(28), "nullable": True},
                        "dob": {"type": "string", "format": "date", "description": "CCYY-MM-DD"},
                        "sex": {"type": "string", "enum": list(SEXES)},
                        "race": {"type": "string", "enum": list(RACES), "nullable": True,
                                 "description": "NCIC race code"},
                        "id_type": text(20, minLength=1, description="e.g. DL (driver licence), ID, PASSPORT"),
                        "id_number": text(25, minLength=1, pattern="^[A-Za-z0-9][A-Za-z0-9 \\-]*$"),
                        "id_state": text(2, minLength=2, pattern="^[A-Za-z]{2}$"),
                    },
                },
                "Firearm": {
                    "type": "object", "additionalProperties": False,
                    "required": ["type", "make", "model", "caliber", "serial"],
                    "properties": {
                        "type": {"type": "string", "enum": list(FIREARM_TYPES)},
                        "make": text(30, minLength=1), "model": text(30, minLength=1),
                        "caliber": text(20, minLength=1),
                        "serial": text(20, minLength=1, pattern="^[A-Za-z0-9][A-Za-z0-9 \\-]*$"),
                    },
                },
                "Check": {
                    "type": "object",
                    "required": ["transaction", "status", "approval_number", "estimated_completion", "received",
                                 "dealer_reference", "firearms"],
                    "properties": {
                        "transaction": {"type": "string", "pattern": r"^F\d{4}-\d{6}$"},
                        "status": {"type": "string", "enum": list(STATUSES)},
                        "approval_number": {"type": "string", "nullable": True,
                                            "description": "approved checks only; unique across all checks"},
                        "estimated_completion": {"type": "string", "format": "date-time", "nullable": True,
                                                 "description": "pending checks, once pending for 30 minutes"},
                        "received": {"type": "string", "format": "date-time"},
                        "dealer_reference": {"type": "string"},
                        "firearms": {"type": "integer", "description": "how many firearms the check named"},
                    },
                },
                "ValidationErrors": {
                    "type": "object", "required": ["errors"],
                    "properties": {"errors": {"type": "array", "items": {
                        "type": "object", "required": ["field", "reason"],
                        "properties": {"field": {"type": "string", "example": "buyer.dob"},
                                       "reason": {"type": "string"}}}}},
                },
                "Error": {"type": "object", "required": ["error"],
                          "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}},
            },
        },
    }


CSS = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f3f4f6;color:#111}
header{background:#1f2937;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;align-items:center;
 justify-content:space-between;gap:.5rem}
header h1{font-size:1.05rem;margin:0}
header form{margin:0}
main{max-width:46rem;margin:0 auto;padding:1rem}
section{background:#fff;border-radius:.5rem;padding:1rem;margin-bottom:1rem;box-shadow:0 1px 2px #0002}
h2{font-size:1.1rem;margin:0 0 .75rem}
label{display:block;font-size:.85rem;font-weight:600;margin:.5rem 0 .2rem}
input,select{width:100%;font-size:1rem;padding:.55rem;border:1px solid #9ca3af;border-radius:.35rem;background:#fff}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(10rem,1fr));gap:0 .75rem}
fieldset{border:1px solid #d1d5db;border-radius:.4rem;margin:.75rem 0;padding:.5rem .75rem}
legend{font-weight:600;font-size:.9rem}
button{font-size:1rem;padding:.65rem 1.2rem;border:0;border-radius:.35rem;background:#1d4ed8;color:#fff;
 cursor:pointer;margin-top:.75rem}
button.quiet{background:#4b5563;margin:0;padding:.4rem .8rem;font-size:.9rem}
.note{color:#4b5563;font-size:.85rem}
.errors{background:#fef2f2;border:1px solid #fca5a5;color:#991b1b;border-radius:.4rem;padding:.5rem .75rem}
.errors ul{margin:.25rem 0 0;padding-left:1.2rem}
table{width:100%;border-collapse:collapse;font-size:.92rem}
th,td{text-align:left;padding:.45rem .35rem;border-bottom:1px solid #e5e7eb;vertical-align:top}
.status{display:inline-block;font-weight:700;padding:.1rem .5rem;border-radius:1rem;font-size:.85rem}
.approved{background:#dcfce7;color:#166534}
.denied{background:#fee2e2;color:#991b1b}
.pending{background:#fef9c3;color:#854d0e}
.result{font-size:1.2rem}
.big{font-size:1.6rem}
@media (max-width:30rem){th.wide,td.wide{display:none}main{padding:.5rem}}
""".strip()


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def page(title: str, body: str, dealer: Optional[Any] = None, csrf: str = "") -> str:
    signout = ""
    if dealer is not None:
        signout = (f'<form method="post" action="/fics/signout"><input type="hidden" name="csrf" value="{e(csrf)}">'
                   f'<span>{e(dealer.id)} {e(dealer.name)}</span> '
                   '<button class="quiet" type="submit" id="signout">Sign out</button></form>')
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{e(title)} - FICS dealer portal (LEMS test system)</title>"
            "<link rel=\"stylesheet\" href=\"/fics/portal.css\"></head><body>"
            f"<header><h1>Firearms instant check - dealer portal</h1>{signout}</header>"
            f"<main>{body}<p class=\"note\">LEMS emulator: a test system with synthetic data only. "
            "Use is monitored and recorded.</p></main></body></html>")


def errors_box(messages: Iterable[str]) -> str:
    items = "".join(f"<li>{e(m)}</li>" for m in messages)
    return f'<div class="errors" role="alert" id="errors"><strong>Please correct:</strong><ul>{items}</ul></div>' \
        if items else ""


def sign_in(csrf: str, message: str = "", dealer_id: str = "") -> str:
    box = f'<div class="errors" role="alert" id="errors">{e(message)}</div>' if message else ""
    return page("Sign in", f"""<section><h2>Sign in</h2>{box}
<form method="post" action="/fics/signin" autocomplete="off">
<input type="hidden" name="csrf" value="{e(csrf)}">
<label for="dealer_id">Dealer id</label><input id="dealer_id" name="dealer_id" required placeholder="D0000001"
 value="{e(dealer_id)}" autocapitalize="characters">
<label for="key">API key</label><input id="key" name="key" type="password" required>
<button type="submit" id="signin">Sign in</button></form>
<p class="note">The dealer id and key come from the state control terminal agency (lems dealer add).</p></section>""")


def status_badge(status: str) -> str:
    return f'<span class="status {e(status)}">{e(status.upper())}</span>'


def _select(name: str, options: Iterable[tuple[str, str]], chosen: str = "", required: bool = True) -> str:
    opts = "".join(f'<option value="{e(v)}"{" selected" if v == chosen else ""}>{e(t)}</option>' for v, t in options)
    return f'<select id="{e(name)}" name="{e(name)}"{" required" if required else ""}>{opts}</select>'


def _input(name: str, label: str, form: dict, required: bool = True, kind: str = "text", extra: str = "") -> str:
    return (f'<div><label for="{e(name)}">{e(label)}</label><input id="{e(name)}" name="{e(name)}" type="{kind}"'
            f' value="{e(form.get(name, ""))}"{" required" if required else ""}{extra}></div>')


def dashboard(dealer: Any, csrf: str, checks: list, form: Optional[dict] = None,
              problems: Iterable[str] = ()) -> str:
    form = form or {}
    guns = []
    for i in range(PORTAL_ROWS):
        req = i == 0
        n = gun_field
        guns.append(f"""<fieldset><legend>Firearm {i + 1}{'' if req else ' (optional)'}</legend><div class="grid">
<div><label for="{n('type', i)}">Type</label>{_select(n('type', i), [("", "-"), *((t, t) for t in FIREARM_TYPES)],
                                                     form.get(n('type', i), ""), req)}</div>
{_input(n('make', i), "Make", form, req)}{_input(n('model', i), "Model", form, req)}
{_input(n('caliber', i), "Caliber", form, req)}{_input(n('serial', i), "Serial number", form, req)}
</div></fieldset>""")
    rows = "".join(
        f'<tr><td><a href="/fics/check/{e(c.txn)}">{e(c.txn)}</a></td><td>{status_badge(c.status)}</td>'
        f'<td class="wide">{e(c.dealer_reference)}</td><td class="wide">{e(c.received.replace("T", " "))}</td>'
        f'<td>{e(c.approval_number or "")}</td></tr>' for c in checks)
    table = (f'<table id="recent"><thead><tr><th>Transaction</th><th>Status</th><th class="wide">Reference</th>'
             f'<th class="wide">Received (UTC)</th><th>Approval</th></tr></thead><tbody>{rows}</tbody></table>'
             if checks else '<p id="recent">No checks yet.</p>')
    body = f"""<section><h2>New check</h2>{errors_box(problems)}
<form method="post" action="/fics/check" autocomplete="off" id="check-form">
<input type="hidden" name="csrf" value="{e(csrf)}">
<div class="grid">{_input("dealer_reference", "Your reference", form, extra=' maxlength="64"')}</div>
<fieldset><legend>Buyer</legend><div class="grid">
{_input("last_name", "Last name", form)}{_input("first_name", "First name", form)}
{_input("middle_name", "Middle name", form, required=False)}
{_input("dob", "Date of birth (CCYY-MM-DD)", form, extra=' placeholder="1990-09-09" inputmode="numeric" maxlength="10"')}
<div><label for="sex">Sex</label>{_select("sex", [("", "-"), *((s, s) for s in SEXES)], form.get("sex", ""))}</div>
<div><label for="race">Race (optional)</label>{_select("race", [("", "-"), *((r, r) for r in RACES)],
                                                        form.get("race", ""), False)}</div>
{_input("id_type", "ID type (DL, ID...)", form)}{_input("id_number", "ID number", form)}
{_input("id_state", "ID state", form, extra=' maxlength="2"')}
</div></fieldset>
{''.join(guns)}
<button type="submit" id="submit-check">Submit check</button></form></section>
<section><h2>Recent checks</h2>{table}</section>"""
    return page("Checks", body, dealer, csrf)


def result(dealer: Any, csrf: str, check: Any) -> str:
    words = {"approved": "Approved: the transfer may proceed.",
             "denied": "Denied: the transfer may not proceed.",
             "pending": "Pending: an examiner will decide. Do not transfer the firearm until approved."}
    extra = ""
    if check.approval_number:
        extra += f'<p>Approval number <strong class="big" id="approval">{e(check.approval_number)}</strong></p>'
    if check.estimated_completion:
        extra += f'<p>Estimated completion {e(check.estimated_completion.replace("T", " "))}</p>'
    body = f"""<section class="result"><h2>Transaction <span id="transaction">{e(check.txn)}</span></h2>
<p id="status">{status_badge(check.status)}</p><p>{e(words.get(check.status, ""))}</p>{extra}
<p class="note">Reference {e(check.dealer_reference)} - {e(check.firearms)} firearm(s) - received
 {e(check.received.replace("T", " "))}</p>
<p><a href="/fics/">Back to checks</a></p></section>"""
    return page(f"Check {check.txn}", body, dealer, csrf)


def not_found() -> str:
    return page("Not found", '<section><h2>Not found</h2><p><a href="/fics/">Back to the portal</a></p></section>')


def gun_field(name: str, row: int) -> str:
    """The portal form's name of a firearm field: ``serial`` in the first row, ``serial_2`` in the second..."""
    return name if row == 0 else f"{name}_{row + 1}"


_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")


def form_to_body(form: dict) -> dict[str, Any]:
    """The portal's form as the JSON API's body (the same validation answers both)."""
    def val(name: str) -> Optional[str]:
        v = form.get(name, "")
        return v if v != "" else None

    body: dict[str, Any] = {
        "dealer_reference": val("dealer_reference"),
        "buyer": {k: val(k) for k in ("last_name", "first_name", "middle_name", "dob", "sex", "race",
                                      "id_type", "id_number", "id_state")},
        "firearms": [],
    }
    dob = body["buyer"]["dob"]
    us = _US_DATE.match(dob or "")
    if us:  # typed as a US counter writes it: MM/DD/CCYY
        body["buyer"]["dob"] = f"{us.group(3)}-{int(us.group(1)):02d}-{int(us.group(2)):02d}"
    for i in range(PORTAL_ROWS):
        gun = {k: val(gun_field(k, i)) for k in ("type", "make", "model", "caliber", "serial")}
        if i == 0 or any(gun.values()):
            body["firearms"].append(gun)
    for key in [k for k, v in body["buyer"].items() if v is None]:
        if key in ("middle_name", "race"):
            del body["buyer"][key]
    return body


FIELD_LABELS = {"dealer_reference": "Your reference", "last_name": "Last name", "first_name": "First name",
                "middle_name": "Middle name", "dob": "Date of birth", "sex": "Sex", "race": "Race",
                "id_type": "ID type", "id_number": "ID number", "id_state": "ID state", "type": "type",
                "make": "make", "model": "model", "caliber": "caliber", "serial": "serial number"}


def label_of(field: str) -> str:
    """``buyer.dob`` -> ``Date of birth``; ``firearms[1].serial`` -> ``Firearm 2 serial number``."""
    if field.startswith("firearms["):
        index, _, rest = field[len("firearms["):].partition("]")
        return f"Firearm {int(index) + 1} {FIELD_LABELS.get(rest.lstrip('.'), rest.lstrip('.'))}".strip() \
            if index.isdigit() else field
    return FIELD_LABELS.get(field.split(".")[-1], field)
