"""Faults the tests inject into octoprovider itself: a process that dies between two writes."""


class ProcessDied(BaseException):
    """Raised from inside a Hetzner response hook: the process is gone before it writes anything.

    A BaseException, so that no `except Exception` in octoprovider can swallow the death.
    """
