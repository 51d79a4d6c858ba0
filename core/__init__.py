"""lxctl: the microkernel of a container and VM manager (daemon ``lxctld``, client ``lxctl``).

This package is kept import-light: the client imports it on every run.
"""

__version__ = "0.1.0"
API_VERSION = "1.0"
