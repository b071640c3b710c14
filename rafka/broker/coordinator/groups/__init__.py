"""The classic group coordinator: consumer groups and committed offsets, kept in the compacted
internal topic `__consumer_offsets` and rebuilt from it whenever this broker leads a partition."""
