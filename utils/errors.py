"""The one exception type the command-line tools turn into a one-line message and a non-zero exit."""


class HarnessError(Exception):
    """Bad input from the user (file, folder, flag, checkpoint): the message names it and what was expected."""
