"""How messages move: the batch transport that hands agents one Faust event per fetched run of
records, the batch protocol every stateful node follows (open the stores, keep the fresh events,
do the work, send and wait for the outputs, commit), the sink that batches sends, topic creation,
and the process's metrics. Nothing here knows what an event means.
"""
