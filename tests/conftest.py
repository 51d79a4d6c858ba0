"""The test layers (see the README): ``unit/`` (pure, no root), ``inprocess/`` (a daemon
in this process over memory streams, fake drivers, no root), ``conformance/`` (one suite
per driver kind, run against every driver this machine supports) and ``real/`` (root,
real daemons and backends, marked ``real``)."""
