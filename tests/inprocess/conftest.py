"""The in-process layer: a real daemon (kernel, API, server) in the test's own trio
loop over memory streams, with the fake drivers of ``fakes.py``. No root needed."""
