"""Helpers for tests and benchmarks of `runner` itself; not used at run time.

    clock.py       virtual time: an event loop whose clock jumps instead of waiting
    fake_build.py  a built build without a run, for tests and benchmarks of what reads one
"""
