"""The few exception classes users of :mod:`syne_tune_localx` catch.

Every error raised by this package derives from :class:`LocalXError`, and its
message names the bad value, what is allowed and where to change it.
"""


class LocalXError(Exception):
    """Base class of all errors raised by ``syne_tune_localx``."""


class ConfigurationError(LocalXError, ValueError):
    """A constructor option or a config value cannot be used as given."""


class LaunchError(LocalXError, RuntimeError):
    """A trial could not be started; the backend is left as if it had never been asked."""


class BackendNotFoundError(LocalXError, LookupError):
    """No backend is registered under the requested name."""


class BackendLoadError(LocalXError, ImportError):
    """A registered backend exists but cannot be loaded or is not a ``TrialBackend``."""
