"""Library functions behind the command-line programs ``val.py`` and ``detect.py``."""
