"""Hypervisor plugins (lxc; qemu comes with a later issue)."""
