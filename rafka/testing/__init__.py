"""rafka for other projects' test suites: a real broker in a child process, and a pytest plugin.

The pytest plugin (`rafka.testing.pytest_plugin`, registered as the `pytest11` entry point
`rafka`) gives fixtures such as `kafka_bootstrap`; `RafkaBroker` is the launcher underneath, usable
without pytest:

    with RafkaBroker(tmp_dir) as broker:
        producer = Producer({"bootstrap.servers": broker.bootstrap})

This package imports nothing of the broker itself: the broker runs in its own process.
"""

from rafka.testing.broker import BrokerStartError, RafkaBroker

__all__ = ["BrokerStartError", "RafkaBroker"]
