"""A pickle payload for the tests that untrusted files never run code."""


class RunsCode:
    """Unpickled by a plain pickle load, this would create the file ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))
