"""rafka: a Kafka-wire-compatible broker whose partition logs are replicated with Raft."""

# The one source of the version: pyproject.toml reads it (tool.setuptools.dynamic), and the broker
# logs it without importlib.metadata, whose import and distribution scan cost ~20 ms of its start.
__version__ = "0.1.0"
