"""What a team shares beyond one machine: results, claims and budgets, rate limits.

    shared_build.py    what a run shares, set up in one place; the engine's one call
    config.py          where the remote cache is and how to reach it (URL, AWS_* variables, mode)
    objects.py         the S3 boundary: obstore calls, errors translated once, bytes and time counted
    records.py         the layout: `ac/v1/<request key>` records over `cas/sha256/<digest>` bytes
    remote_cache.py    the run's remote cache: look before a paid request, record after one
    sync.py            `runner cache push` and `runner cache pull`
    gc.py              `runner cache gc`: mark from committed lockfiles, sweep past a grace period
    cache_cli.py       the `runner cache` commands and `runner run --remote-cache-mode`
    coordinator.py     the ledger in PostgreSQL (RUNNER_COORDINATOR): claims with leases, budgets
    claims.py          the run's claims: hold, wait for, take or adopt each paid request
    claims_cli.py      `runner run --budget` and the claims `runner status` shows
    shared_limiter.py  each account's window and in-flight cap in Redis (RUNNER_LIMITER)

Without a remote cache, a coordinator or a shared limiter configured nothing
here runs, and the runner behaves exactly as on one machine alone.
"""
