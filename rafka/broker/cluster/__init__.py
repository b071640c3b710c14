"""The cluster: the metadata log and its image, the controller's requests (registration,
AlterPartition, producer-id blocks), Raft's transport between nodes, and self-fencing."""
