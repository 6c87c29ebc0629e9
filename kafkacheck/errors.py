"""Errors the command line turns into a one-line message and exit code 2."""


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2, never a traceback."""
