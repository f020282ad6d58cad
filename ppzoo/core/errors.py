"""Errors meant for users: one message naming the file, key or value at fault."""


class PPZooError(Exception):
    """Base of errors that tools print as one line instead of a stack trace."""


class ConfigError(PPZooError, ValueError):
    """A config file, key or value is wrong."""


class DataError(PPZooError, ValueError):
    """A data file is missing, unreadable or holds a value out of range."""


class WeightsError(PPZooError, ValueError):
    """Weights could not be downloaded, verified or loaded."""
