"""An example LEMS file handler plug-in: Idaho answers Nlets vehicle registration
inquiries (RQ) from its own data.  Synthetic test records only.

It imports nothing but the public plug-in interface (lems.files.handlers, lems.wire.message)
and is found by dotted path: copy this file into ``<home>/routes/plugins/`` and
add to ``<home>/routes/routes.toml``::

    [[handler]]
    name = "idaho"
    use = "example_handler:IdahoRegistrations"
    # Everything except name and use reaches the handler as context.options.
    agency = "ID9990100"

    [[state]]
    code = "ID"
    name = "IDAHO"
    ori = "ID0000000"
    handler = "idaho"
    set = "ID"

Then ``RQ.OR9990100.ID.TXTLIC/IDTEST1`` is answered ``RR.ID0000000`` with the
registration below, and ``NL`` fans out to Idaho as well.  Any other file (a DQ
to ID) is answered with no record.
"""

from __future__ import annotations

from collections.abc import Sequence

from lems.files.handlers import HandlerContext
from lems.wire.message import Message, Record

# (NIC, LIC, VIN, year, make, model, colour, owner name, address)
REGISTRATIONS = (
    ("R000000901", "IDTEST1", "1IDTESTVIN0000901", "2020", "FORD", "ESC", "RED", "DOE, JOHN Q",
     "900 TEST WAY BOISE ID 83702"),
    ("R000000902", "IDTEST2", "1IDTESTVIN0000902", "2015", "JEEP", "WRA", "BLK", "SAMPLE, DAVID",
     "901 DEMO RD POCATELLO ID 83201"),
)


class IdahoRegistrations:
    """Serves file ``registration`` in record set ``ID``; searches by LIC (narrowed by LIS) or VIN."""

    FILE = "registration"

    def __init__(self, context: HandlerContext) -> None:
        self.set = str(context.options.get("set", "ID"))
        agency = str(context.options.get("agency", "ID9990100"))
        self.records = [
            Record(file=self.FILE, nic=nic, ori=agency, entered="20250101", record_set=self.set,
                   fields=(("LIC", lic), ("LIS", "ID"), ("LIY", "2026"), ("LIT", "PC"), ("VIN", vin),
                           ("VYR", year), ("VMA", make), ("VMO", model), ("VCO", colour), ("NAM", name),
                           ("ADR", address)))
            for nic, lic, vin, year, make, model, colour, name, address in REGISTRATIONS]

    def inquire(self, msg: Message, file: str, record_set: str) -> Sequence[Record]:
        if file != self.FILE or record_set != self.set:
            return []
        lic, lis, vin = msg.get("LIC"), msg.get("LIS"), msg.get("VIN")
        return [r for r in self.records
                if (lic and r.get("LIC") == lic and (not lis or r.get("LIS") == lis))
                or (vin and r.get("VIN") == vin)]
