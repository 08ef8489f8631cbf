"""What every layer may use: the clock, the settings, the registry (agencies,
user agreements, terminals, operators), credentials, the switch's error codes,
the event vocabulary shared by the core and the traffic steps, and log setup.

Imports nothing of lems outside ``lems.base``.
"""
