"""The one error type users see: a single line that names the problem."""


class SplatError(Exception):
    """A user-facing error: bad input, bad file, bad argument.

    The CLI prints ``error: <message>`` on one line and exits non-zero; library
    callers can catch it. The message must name the thing at fault (a file, an
    argument, a field) and what is wrong with it, and must fit on one line.
    """

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # force one line


class NothingToDo(SplatError):
    """The command has nothing to do and changed nothing (e.g. resuming a finished run).
    The CLI prints the message and exits 0."""
