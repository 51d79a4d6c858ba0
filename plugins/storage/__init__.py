"""Storage plugins (dir; btrfs, zfs and lvm come with later issues)."""
