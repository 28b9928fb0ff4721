"""The one exception users can cause. It is caught once, at the CLI (and later HTTP) edge."""


class FrameduelError(Exception):
    """A problem the user can fix; the message names the problem and the fix, on one line."""
