"""Error types that the CLI turns into one clear line and exit code 2."""


class SeqlabError(Exception):
    """Base class of every user-facing error (bad config, bad data, bad input)."""


class ConfigError(SeqlabError):
    """A config file is missing, malformed, or names something it must not."""


class DataError(SeqlabError):
    """A data file is missing or malformed, or the data holds NaN or wrong shapes."""


class CheckpointError(SeqlabError):
    """A checkpoint is missing, unreadable, or does not match the config."""
