"""Proof that the site holds: load, soak and the helpers they share (a throw-away site, process memory).

Separate commands, not part of `make test`: `make loadtest`, `make soak`. Small versions of each run in the
suite (tests/e2e/test_load.py). Loopback only: nothing here talks to another machine.
"""
