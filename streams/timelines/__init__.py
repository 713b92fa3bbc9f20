"""Home timelines, `mode=latest`: the pure merge rules (pushed entries plus pulled celebrity
tweets, filters, paging), the timeline cache in Redis (batched fanout, trims, removals, rebuilds),
and the reader that serves a page from it.
"""
