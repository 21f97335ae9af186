"""The one exception type the CLI turns into a single clear line on stderr."""


class AerecError(Exception):
    """A problem the user can fix: the message names it and says how.

    The CLI prints ``error: <message>`` and exits with ``exit_code``; no traceback.
    """

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class UsageError(AerecError):
    """An out-of-range option or an unknown name."""
