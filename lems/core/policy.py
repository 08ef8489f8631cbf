"""Who may do what (PROTOCOL.md 5.6, Oregon OAR 257-015): every rule in one place.

``Policy.authorise`` runs before anything is routed and raises a ``Reject``
with the section 6 code and a reason an operator understands.  The rules read
the catalogue's key attributes (category, action, level) and the registry's
agencies, agreements and operators; the table ``CATEGORY_RULES`` says which
rule guards which category of key.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Optional

from lems.base.conf import Settings
from lems.base.errors import Reject
from lems.wire.message import Message
from lems.base.registry import Agency, Operator, Registry, Terminal

LEVEL_RANK = {"inquiry": 0, "entry": 1, "full": 2}
# Certification lasts two years (to the same calendar day); a new operator has
# 60 days from the training guide's issue to be certified.
CERTIFICATION_YEARS = 2
GUIDE_DAYS = 60
# The training guide is issued within 10 days of the operator's first sign-on (PROTOCOL.md 11).
ISSUE_DAYS = 10
GUIDE_NOT_ISSUED = "TRAINING GUIDE NOT ISSUED"
NOT_COMPLETED = "TRAINING NOT COMPLETED"
# Notice of termination, or the signing official leaving, ends an agreement 30 days later.
AGREEMENT_TAIL_DAYS = 30
DMV_PURPOSES = "ABCDEFGHI"


def _years_after(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


class Policy:
    def __init__(self, settings: Settings, clock: Any,
                 first_signon: Optional[Callable[[str], Optional[dt.date]]] = None) -> None:
        self.settings = settings
        self.clock = clock
        # An operator's first sign-on date (the store's; the switch passes it): the training
        # guide's 10 days run from it.
        self.first_signon = first_signon or (lambda operator_id: None)

    def local_now(self) -> dt.datetime:
        return self.clock.now().astimezone(self.settings.timezone)

    def today(self) -> dt.date:
        return self.local_now().date()

    # -- user agreements -------------------------------------------------------------

    def agreement_problem(self, agency: Agency, today: Optional[dt.date] = None) -> Optional[str]:
        """Why the agency's user agreement is not in force, or None when it is."""
        today = today or self.today()
        a = agency.agreement
        if a.signed is None or a.signed > today:
            return f"NO SIGNED USER AGREEMENT IN FORCE FOR {agency.ori}"
        grace = dt.timedelta(days=self.settings.review_grace_days)
        if a.review_due is not None and today > a.review_due + grace:
            return f"USER AGREEMENT ANNUAL REVIEW OVERDUE SINCE {a.review_due.isoformat()} FOR {agency.ori}"
        tail = dt.timedelta(days=AGREEMENT_TAIL_DAYS)
        if a.notice is not None and today >= a.notice + tail:
            return f"USER AGREEMENT TERMINATED {(a.notice + tail).isoformat()} FOR {agency.ori}"
        if a.official_left is not None and today >= a.official_left + tail:
            return (f"USER AGREEMENT LAPSED {(a.official_left + tail).isoformat()} "
                    f"(SIGNING OFFICIAL LEFT) FOR {agency.ori}")
        return None

    def agreement_in_force(self, agency: Agency) -> None:
        problem = self.agreement_problem(agency)
        if problem:
            raise Reject(".25.", problem)

    def agreement_due(self, agency: Agency, today: dt.date, days: int) -> list[str]:
        """Reviews and endings of this agency's agreement within ``days`` (sign-on and console)."""
        a, out = agency.agreement, []
        horizon = today + dt.timedelta(days=days)
        tail = dt.timedelta(days=AGREEMENT_TAIL_DAYS)
        if a.review_due is not None:
            if a.review_due < today:
                ends = a.review_due + dt.timedelta(days=self.settings.review_grace_days)
                out.append(f"USER AGREEMENT REVIEW OVERDUE SINCE {a.review_due.isoformat()}, "
                           f"ACCESS ENDS AFTER {ends.isoformat()}")
            elif a.review_due <= horizon:
                out.append(f"USER AGREEMENT REVIEW DUE {a.review_due.isoformat()}")
        for start, what in ((a.notice, "TERMINATES"), (a.official_left, "LAPSES (SIGNING OFFICIAL LEFT)")):
            if start is not None and start + tail <= horizon:
                out.append(f"USER AGREEMENT {what} {(start + tail).isoformat()}")
        return out

    # -- operators ----------------------------------------------------------------------

    def certification_expires(self, operator: Operator) -> Optional[dt.date]:
        return _years_after(operator.certified, CERTIFICATION_YEARS) if operator.certified else None

    # -- training (PROTOCOL.md 11) --------------------------------------------------------

    def training_deadline(self, operator: Operator, first_signon: Optional[dt.date],
                          today: dt.date) -> Optional[tuple[str, dt.date]]:
        """The training deadline the operator is running against: (what, last day allowed), or None
        when the operator is trained.  No guide yet: 10 days from the first sign-on (today when
        this is the first); a guide issued and not completed: 60 days from its issue."""
        if operator.in_training:
            assert operator.guide_issued is not None
            return NOT_COMPLETED, operator.guide_issued + dt.timedelta(days=GUIDE_DAYS)
        if operator.guide_issued is None and operator.certified is None:
            return GUIDE_NOT_ISSUED, (first_signon or today) + dt.timedelta(days=ISSUE_DAYS)
        return None

    def training_problem(self, operator: Operator, first_signon: Optional[dt.date],
                         today: Optional[dt.date] = None) -> Optional[str]:
        """Why the operator may not sign on (``.20.``): a training deadline has passed."""
        today = today or self.today()
        deadline = self.training_deadline(operator, first_signon, today)
        if deadline is None or today <= deadline[1]:
            return None
        what, last = deadline
        if what == GUIDE_NOT_ISSUED:
            return (f"{GUIDE_NOT_ISSUED} WITHIN {ISSUE_DAYS} DAYS OF FIRST SIGN-ON "
                    f"{(first_signon or today).isoformat()} (DUE {last.isoformat()})")
        assert operator.guide_issued is not None
        return (f"{NOT_COMPLETED} WITHIN {GUIDE_DAYS} DAYS OF THE GUIDE'S ISSUE "
                f"{operator.guide_issued.isoformat()} (DUE {last.isoformat()})")

    def operator_problem(self, operator: Operator, today: Optional[dt.date] = None,
                         first_signon: Optional[dt.date] = None) -> Optional[str]:
        today = today or self.today()
        if operator.status != "active":
            return f"OPERATOR {operator.id} IS {operator.status.upper()}"
        if operator.background_check is None:
            return f"NO BACKGROUND CHECK ON FILE FOR OPERATOR {operator.id}"
        expires = self.certification_expires(operator)
        if expires is None:
            if first_signon is None:
                first_signon = self.first_signon(operator.id)
            # Never certified: allowed while a training deadline runs (the guide's 10 days from
            # the first sign-on, then the 60 days from its issue), refused after it.
            deadline = self.training_deadline(operator, first_signon, today)
            if deadline is None or today > deadline[1]:
                return f"OPERATOR {operator.id} NOT CERTIFIED"
        elif today >= expires:
            return f"OPERATOR {operator.id} CERTIFICATION EXPIRED {expires.isoformat()}"
        return None

    def signon_warnings(self, agency: Agency, operator: Operator,
                        first_signon: Optional[dt.date] = None) -> list[str]:
        today, days = self.today(), self.settings.warn_days
        out = [f"WARNING - {w}" for w in self.agreement_due(agency, today, days)]
        problem = self.operator_problem(operator, today, first_signon)
        if problem:
            out.append(f"WARNING - {problem} - TRANSACTIONS WILL BE REFUSED")
        else:
            expires = self.certification_expires(operator)
            if expires is not None and expires <= today + dt.timedelta(days=days):
                out.append(f"WARNING - OPERATOR CERTIFICATION EXPIRES {expires.isoformat()}")
        deadline = self.training_deadline(operator, first_signon, today)
        if deadline is not None and deadline[1] <= today + dt.timedelta(days=days):
            what, last = deadline
            if what == GUIDE_NOT_ISSUED:
                out.append(f"WARNING - TRAINING GUIDE MUST BE ISSUED BY {last.isoformat()}")
            else:
                out.append(f"WARNING - TRAINING MUST BE COMPLETED BY {last.isoformat()}")
        return out

    # -- the rules -------------------------------------------------------------------------

    def authorise(self, registry: Registry, terminal: Terminal, agency: Agency, operator: Operator,
                  msg: Message, spec: Any) -> None:
        if msg.ori not in registry.oris_for(terminal):
            raise Reject(".21.", f"TERMINAL {terminal.id} IS NOT AUTHORIZED TO SEND FOR ORI {msg.ori}")
        acting = registry.agency(msg.ori)
        assert acting is not None  # oris_for only names registered agencies
        for who in {agency.ori: agency, acting.ori: acting}.values():
            if who.status in ("revoked", "suspended"):
                raise Reject(".21.", f"AGENCY {who.ori} IS {who.status.upper()}")
            self.agreement_in_force(who)
        if terminal.type == "receive-only":
            raise Reject(".22.", f"TERMINAL {terminal.id} IS RECEIVE-ONLY")
        problem = self.operator_problem(operator)
        if problem:
            raise Reject(".22.", problem)
        if LEVEL_RANK[operator.level] < LEVEL_RANK.get(spec.level, 0):
            raise Reject(".22.", f"OPERATOR TRAINING LEVEL {operator.level.upper()} DOES NOT ALLOW {msg.mke}")
        rule = CATEGORY_RULES.get(spec.category)
        if rule is not None:
            # The rules look at the agency the terminal belongs to: a service agency acting
            # for a police department is still a service agency under its own agreement.
            rule(self, agency, msg, spec)

    def _investigative(self, agency: Agency, msg: Message, spec: Any) -> None:
        if agency.criminal_justice or (agency.type == "service" and agency.serves):
            return
        raise Reject(".22.", f"{spec.category.upper()} FILES: CRIMINAL JUSTICE AGENCIES ONLY ({msg.mke})")

    def _criminal_history(self, agency: Agency, msg: Message, spec: Any) -> None:
        if not (agency.criminal_justice or "criminal-history" in agency.agreement.grants):
            raise Reject(".22.", f"CRIMINAL HISTORY NOT AUTHORIZED FOR {agency.ori}")

    def _motor_vehicle(self, agency: Agency, msg: Message, spec: Any) -> None:
        home = self.settings.state
        dests = set(msg.dests)
        purpose = msg.get("PUR")
        if dests - {home} and not agency.criminal_justice:
            raise Reject(".22.", "OUT-OF-STATE MOTOR VEHICLE AND DRIVER RECORDS: CRIMINAL JUSTICE AGENCIES ONLY")
        allowed = agency.agreement.dmv_purposes
        if purpose is None:
            if not agency.criminal_justice:
                raise Reject(".22.", f"PUR/<LETTER> REQUIRED FOR {home} MOTOR VEHICLE RECORDS "
                                     f"(AGREEMENT ALLOWS {allowed or 'NONE'})")
            return
        if purpose not in DMV_PURPOSES or purpose not in allowed:
            raise Reject(".22.", f"PURPOSE {purpose} NOT ALLOWED BY THE USER AGREEMENT OF {agency.ori} "
                                 f"(ALLOWS {allowed or 'NONE'})")

    def _prohibited(self, agency: Agency, msg: Message, spec: Any) -> None:
        if spec.action == "inquiry":
            if msg.get("PUR") != "F":
                raise Reject(".22.", "PROHIBITED PERSONS INQUIRY REQUIRES PUR/F")
            if "firearms" not in agency.agreement.grants:
                raise Reject(".22.", f"FIREARMS CHECKS NOT GRANTED TO {agency.ori}")
        elif "prohibited-entry" not in agency.agreement.grants:
            raise Reject(".22.", f"{agency.ori} IS NOT A DESIGNATED AGENCY FOR THE PROHIBITED PERSONS FILE")

    def _administrative(self, agency: Agency, msg: Message, spec: Any) -> None:
        if agency.criminal_justice:
            return
        if msg.mke == "AML":
            raise Reject(".24.", "AML IS FOR LAW ENFORCEMENT AGENCIES ONLY")
        if not agency.agreement.approved_purpose:
            raise Reject(".24.", f"{agency.ori} HAS NO APPROVED PURPOSE FOR ADMINISTRATIVE MESSAGES")
        if (msg.body or "").lstrip().startswith("EMR/Y"):
            return
        if not self.business_window_open():
            raise Reject(".24.", "NON-EMERGENCY ADMINISTRATIVE MESSAGES FROM NON-CRIMINAL JUSTICE AGENCIES "
                                 "ONLY 1200-1300 AND 1700-0800 ON WEEKDAYS, OR WEEKENDS AND HOLIDAYS")

    def business_window_open(self, moment: Optional[dt.datetime] = None) -> bool:
        """PROTOCOL.md 5.5 in the switch's time zone with its holiday list."""
        local = (moment or self.clock.now()).astimezone(self.settings.timezone)
        if local.weekday() >= 5 or local.date() in self.settings.holidays:
            return True
        t = local.time()
        return (dt.time(12) <= t < dt.time(13)) or t >= dt.time(17) or t < dt.time(8)

    def _status(self, agency: Agency, msg: Message, spec: Any) -> None:
        if not agency.control:
            raise Reject(".22.", f"{msg.mke} MAY BE SENT BY THE CONTROL TERMINAL AGENCY ONLY")


CATEGORY_RULES: dict[str, Callable[[Policy, Agency, Message, Any], None]] = {
    "investigative": Policy._investigative,
    "corrections": Policy._investigative,
    "hit-confirmation": Policy._investigative,
    "criminal-history": Policy._criminal_history,
    "motor-vehicle": Policy._motor_vehicle,
    "prohibited": Policy._prohibited,
    "admin": Policy._administrative,
    "status": Policy._status,
}
