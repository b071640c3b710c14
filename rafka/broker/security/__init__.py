"""Authentication, sans I/O: JAAS options, the SASL mechanisms' server (and client) exchanges,
SCRAM credentials. The listeners and handlers drive them."""
