"""The package version, in a module that imports nothing (the store records it without importing the package)."""

__version__ = "0.1.0"
