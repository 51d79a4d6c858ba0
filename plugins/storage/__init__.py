"""Storage plugins: dir, btrfs, zfs (kernel ZFS or zfs-fuse) and lvm."""
