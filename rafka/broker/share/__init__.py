"""Share groups (KIP-932): queue semantics on a log. First slice (issue 20): one node, state in
memory only (lost on restart). `partition_state` is the sans-I/O share-partition state machine,
`group` the share group membership, `sessions` the share fetch sessions, `service` ties them to
the broker's partitions and the event loop."""
