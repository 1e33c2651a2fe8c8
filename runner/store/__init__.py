"""What a build remembers: the lockfile, the journal, the content-addressed cache."""
