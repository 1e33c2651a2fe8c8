"""What a build needs and holds: cache keys, states, costs; status, clean and export.

    plan.py          every job's cache key, state (new, changed, up to date, restore...) and cost
    pricing.py       what a request is expected to cost, and the most it can cost
    housekeeping.py  `runner status` and `runner clean`
    export.py        `runner export`: chosen takes copied to fixed paths
"""
