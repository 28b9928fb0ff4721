"""The one exception users can cause. It is caught once, at the CLI (and later HTTP) edge."""


class FrameduelError(Exception):
    """A problem the user can fix; the message names the problem and the fix, on one line."""


class Unsupported(FrameduelError):
    """A framework cannot run this workload, task or mode: the cell's status is "unsupported", with this reason."""
