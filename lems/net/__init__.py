"""Twisted only: the terminal link (TLS, framing, group commit), the TLS
contexts and the certificate authority, the SSH console server and client,
and the service tree that wires a home onto the network.

May import ``lems.admin`` and everything below it.
"""
