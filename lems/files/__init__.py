"""The record files: record I/O and indexes, the file handler protocol and the
built-in handler, phonetic name keys, and the reply wording built from the
catalogues.

May import ``lems.wire``, ``lems.store`` and ``lems.base``.
"""
