"""Observers of a run's events: what a person sees while it goes.

    state.py    counters kept from events in O(1) each
    display.py  the live table on a terminal; plain.py lines or JSON for logs and CI
"""
