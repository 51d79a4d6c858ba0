"""The lxctl command-line client."""
