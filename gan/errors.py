"""The one exception type for mistakes a user can make and fix (params, paths, files, servers)."""


class UserError(Exception):
    """A problem in the user's input. The message says what is wrong, where, and what to do.

    Stage entry points print it as one line and exit with status 2; anything else is a bug
    and keeps its traceback.
    """


def one_line(exc: BaseException, limit: int | None = 300) -> str:
    """An exception's message on one line, cut to `limit` characters (None: whole), for a UserError's text."""
    return " ".join(str(exc).split())[:limit]
