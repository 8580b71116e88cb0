"""The one exception type that the angiogram loader raises for bad input."""


class AngiogramReadError(ValueError):
    """A file could not be used as an angiogram.

    Args:
        path: the file that was rejected.
        reason: a short, human-readable reason (for example "no pixel data").
    """

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.reason))
