"""Configuration: the key schema (``schema``), the core's instance keys (``instance``),
value units (``units``) and the daemon's own settings (``daemon``)."""
