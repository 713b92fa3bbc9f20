"""The fanout node's RocksDB state: the follow graph of a partition, edge by edge with incremental
counts and the celebrity crossing, and the tweet store (the seed design's `tweets` table) that
rebuilds and follows read from.
"""
