"""The one exception type for mistakes a user can make and fix (params, paths, files, servers)."""


class UserError(Exception):
    """A problem in the user's input. The message says what is wrong, where, and what to do.

    Stage entry points print it as one line and exit with status 2; anything else is a bug
    and keeps its traceback.
    """
