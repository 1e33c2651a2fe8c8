"""What a team shares beyond one machine: results, claims and budgets, rate limits.

    shared_build.py    what a run shares, set up in one place (`connect`), handed to the engine
    config.py          where the remote cache is and how to reach it (URL, AWS_* variables, mode)
    objects.py         the S3 boundary: obstore calls, errors translated once, bytes and time counted
    records.py         the layout: `ac/v1/<request key>` records over `cas/sha256/<digest>` bytes
    remote_cache.py    the run's remote cache: look before a paid request, record after one
    transfer.py        moving takes between the local cache and the remote one, checked
    sync.py            `runner cache push` and `runner cache pull`
    gc.py              `runner cache gc`: mark from committed lockfiles, sweep past a grace period
    coordinator.py     the ledger in PostgreSQL (RUNNER_COORDINATOR): claims with leases, budgets
    claims.py          the run's claims: hold, wait for, take or adopt each paid request
    status.py          what the ledger holds for a build, for `runner status`
    shared_limiter.py  each account's window and in-flight cap in Redis (RUNNER_LIMITER)
    (their commands and options are in runner/cli/: cache.py, claims.py)

The engine knows this package only through Protocols (runner.engine.context's
`SharedResults` and `SharedClaims`, and the limiter's interface); runner/cli/run.py
hands it the implementations. Without a remote cache, a coordinator or a shared
limiter configured nothing here runs, and the runner behaves exactly as on one
machine alone.
"""
