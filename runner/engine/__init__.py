"""Running a plan: every job against its provider, within each account's limits.

    scheduler.py    every job that needs work, concurrently, in dependency order
    job.py          one job: submit (or resume), wait, fetch, store; journal before network
    attempts.py     the one retry loop (`retrying`) of every request a job repeats
    context.py      what a run's jobs share: the run's context, its accounts, `Finish`
    retry.py        the one place an error becomes a decision (retry, stop, fail, resubmit)
    limits/         one limiter per account: request window, in-flight tasks, polls
    budget.py       `--max-credits`, reserved before a request and settled after
    callbacks.py    the local receiver of provider callbacks (a hint to poll, never a result)
    materialize.py  from a stored asset (and its bytes, when in hand) to the output files
                    and the lockfile entry
    narrate.py      a narration's stitch job; postprocess.py a job's post-processing step
    events.py       what happens, as events for observers (progress, logs, the tally)
    loop.py         the event loop a run runs on

The engine never prints: observers and the CLI show what it emits.
"""
