"""The network front: client listeners and connections, request dispatch, and forwarding of
controller requests to the metadata quorum's leader."""
