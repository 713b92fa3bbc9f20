"""Redis as the read path's view: `keys` names every Redis key and member format, `scripts` loads
every Lua script (EVALSHA with a NOSCRIPT retry), and `view` batches the writes nodes make for
readers and the few round trips readers make.
"""
