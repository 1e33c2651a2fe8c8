"""The `runner` command: the only stage that prints and picks exit codes.

    main.py       the parser and one thin handler per command
    run.py        `runner run`: builds a run's objects (accounts, keys, limiters, adapters,
                  journal, cache, sandbox, callbacks, the team's cache) and hands them
                  to the engine
    exitcodes.py  the one mapping from outcomes to exit codes
    summary.py    the end-of-run summary; plan_view.py renders `runner plan`
    claims.py     `--budget` and what `runner status` shows of other machines' claims
    report.py, review.py, cache.py, starter.py   the report, review/export, remote cache,
                  init and completion commands
"""
