"""syne-tune-localx: a drop-in local trial backend for syne-tune.

Names are imported lazily, so ``import syne_tune_localx`` is cheap and changes
nothing in the process (importing syne-tune's backends sets ``OMP_NUM_THREADS``;
we do not).
"""

from importlib import import_module

__version__ = "0.1.0"

_PUBLIC = {
    "LocalXBackend": "syne_tune_localx.backend",
    "GpuRotationMixin": "syne_tune_localx.gpu",
    "JsonArgsMixin": "syne_tune_localx.arguments",
    "CheckpointMixin": "syne_tune_localx.checkpoints",
    "BackendHooks": "syne_tune_localx.hooks",
    "available_backends": "syne_tune_localx.registry",
    "load_backend_class": "syne_tune_localx.registry",
    "make_backend": "syne_tune_localx.registry",
    "LocalXError": "syne_tune_localx.errors",
    "ConfigurationError": "syne_tune_localx.errors",
    "LaunchError": "syne_tune_localx.errors",
    "BackendNotFoundError": "syne_tune_localx.errors",
    "BackendLoadError": "syne_tune_localx.errors",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'syne_tune_localx' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
