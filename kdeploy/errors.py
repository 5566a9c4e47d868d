"""One exception type for everything a user can fix; the CLI prints it as one line."""


class KdeployError(Exception):
    """A problem with the user's input or environment, worded as what is wrong and how to fix it."""
