"""Driver protocols, one module per kind, and the registry plugins fill.

Drivers are async objects (their methods may block on the kernel or on tools); the
hook that registers them (``lxctl_register_drivers``) is synchronous. Each kind
declares its capabilities as an ``Info`` dataclass that the core reads.
"""
