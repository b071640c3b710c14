"""A slow disk for a test broker: put this directory on the broker's PYTHONPATH and every fsync
of its partitions' records takes SLOW_FSYNC_MS milliseconds longer."""

import os
import time

_delay_s = int(os.environ.get("SLOW_FSYNC_MS", "0")) / 1000

if _delay_s > 0:
    import rafka.storage.file_records as _file_records

    _datasync = _file_records._datasync

    def _slow_datasync(fd: int) -> None:
        time.sleep(_delay_s)
        _datasync(fd)

    _file_records._datasync = _slow_datasync
