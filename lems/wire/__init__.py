"""Bytes <-> values, no state: framing, input and output headers, the message
codec and the catalogues it is built from, parsed messages and records, the
capture format.

May import ``lems.base``; nothing above.
"""
