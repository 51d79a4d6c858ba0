"""lxctl's built-in plugins. Each is loaded through the ``lxctl.plugins`` entry-point
group, exactly like a third-party plugin, and imports only lxctl's public API."""
