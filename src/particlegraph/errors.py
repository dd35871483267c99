"""Exception families. The CLI prints any of these as one line and exits with status 2."""

from __future__ import annotations


class ParticlegraphError(Exception):
    """Base class: a problem the user can fix (bad input, bad config, missing dependency)."""


class DataFileError(ParticlegraphError):
    """A data file is missing, unreadable or does not follow the expected layout."""


class ConfigError(ParticlegraphError):
    """A configuration value or command-line override is invalid."""


class MissingDependencyError(ParticlegraphError):
    """An optional dependency needed by this feature is not installed."""


def require(module: str, extra: str) -> object:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the pip extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{module} is not installed; install it with: pip install 'particlegraph[{extra}]'"
        ) from err
