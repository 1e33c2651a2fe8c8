"""Helpers for tests of `runner` itself (virtual time); not used at run time."""
