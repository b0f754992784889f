"""One exception type for user mistakes: the CLI prints its one-line message and exits with code 2."""


class UserError(Exception):
    """A mistake in what the user asked for (bad file, impossible ratio, broken checkpoint...).

    The message must be a single line that says what is wrong and, where possible, what to do.
    """

    exit_code = 2
