"""Network plugins (bridge, VLAN, OVN) come with later issues; none is built in yet."""
