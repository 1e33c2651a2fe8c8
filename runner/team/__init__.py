"""What a team shares beyond one machine: results first.

    config.py        where the remote cache is and how to reach it (URL, AWS_* variables, mode)
    objects.py       the S3 boundary: obstore calls, errors translated once, bytes and time counted
    records.py       the layout: `ac/v1/<request key>` records over `cas/sha256/<digest>` bytes
    remote_cache.py  the run's remote cache: look before a paid request, record after one
    sync.py          `runner cache push` and `runner cache pull`
    gc.py            `runner cache gc`: mark from committed lockfiles, sweep past a grace period
    (the `runner cache` commands and `--remote-cache-mode` are in runner/cli/cache.py)

Without a remote cache configured nothing here runs, and the runner behaves
exactly as with its local cache alone.
"""
