"""Node state: RocksDB partition stores that keep the source offsets they reflect."""
