"""The route steps: NCIC-style inquiries, record maintenance, Nlets-style
inquiries to states, agency-to-agency traffic with durable queues, hit
confirmation; and the route table that says which step and handler take a key.

Each step takes the frozen ``Transaction`` and returns an ``Outcome``
(``lems.base.events``).  May import ``lems.files``, ``lems.wire``,
``lems.store`` and ``lems.base``; never the core that calls it.
"""
