"""``python -m flow_memory.market <fd>``: the market process (``flow_memory.market.process``).

It ignores SIGINT and SIGTERM from its first instruction, before the second its imports take:
the server stops it by closing its end of the socket, after its last command, and a signal
meant for the server (Ctrl-C reaches the whole process group, a service manager's stop every
process of the service) must not end it first."""

import signal

signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)

from flow_memory.market.process import main  # noqa: E402

main()
