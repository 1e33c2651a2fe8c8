"""What a build remembers, on disk, so that a crash loses nothing.

    layout.py    where a build's files live (live and sandbox builds apart)
    atomic.py    atomic file writes: temp file beside, fsync, rename
    journal.py   every request's fate (SQLite), committed before the next request;
                 its moves in one table (TRANSITIONS)
    cache.py     every file ever produced, by sha256; packs.py small ones packed
    lockfile.py  what each job's asset is; reviews.py what a person decided about it
    buildlock.py one build, one run: the OS file lock on the build's state folder
"""
