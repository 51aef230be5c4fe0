"""The package's version, in a leaf module that the others read without importing the package."""

__version__ = "0.2.0"
