"""The package version, in a module of its own so that genvae's modules can read it without
importing the package (``genvae/__init__``), which imports them."""

__version__ = "0.1.0"
