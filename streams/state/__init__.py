"""Node state in RocksDB: one partition store per (node, input partition) that keeps the source
offsets it reflects, the changelog that carries each commit to whichever worker owns the
partition next, event-id dedup, and `keys`, the one module that names every RocksDB key prefix.
"""
