"""Share groups (KIP-932): queue semantics on a log. Share-partition states are durable in
`__share_group_state` (`state_records`, `state_coordinator`, `persister`); the groups and their
members in `__consumer_offsets` (`group_records`); share sessions are in memory.
`partition_state` is the sans-I/O share-partition state machine, `group` the share group
membership, `sessions` the share fetch sessions, `service` ties them to the broker's partitions
and the event loop."""
