"""The switch's sans-IO core: the session as a transition table, sign-on and
lockout, the transaction chain (parse -> authorise -> route -> reply), the
access policy and the router that picks a step.

Imports nothing from Twisted.  May import ``lems.traffic`` and everything
below it.
"""
