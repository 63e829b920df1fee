"""The `garrison` command line: a thin adapter over the library."""
