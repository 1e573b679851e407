"""The one exception type the command-line tools turn into a one-line message and a non-zero exit."""


class HarnessError(Exception):
    """Bad input from the user (file, folder, flag, checkpoint): the message names it and what was expected."""


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type's name when it has none), for one-line errors about
    a failure inside PyTorch, whose messages run over many lines."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:limit]
