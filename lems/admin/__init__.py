"""The administrators' operations (status, queues, revoke, reload...: operations)
and the console's command shell (shell), without Twisted: a line in, a reply out.

May import ``lems.core`` and everything below it.
"""
