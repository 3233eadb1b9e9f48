"""The one kind of error a user can fix, which every tool tells apart from a bug.

:class:`InputError` is raised for a bad parameter, a bad file, or data that
does not fit the config; the message names the parameter, the value and the
rule. The CLI reports it in one line and exits 2. Any other exception is a
bug in fusioncim: the CLI lets its traceback through and exits 1.
``InputError`` is a ``ValueError``, so library callers may catch either.
"""

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad input a user can fix (a parameter, a file, data that does not fit the config)."""
