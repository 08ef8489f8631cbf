"""The programs around the switch: the terminal client (term, send), capture
replay, the benchmark and its echo server, home creation, the audit commands
and the ICD generator.  Each registers its own subcommand with ``lems.cli``.

May import anything in lems except ``lems.cli``.
"""
