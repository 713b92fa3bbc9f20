"""Real-time features as pure state, no I/O: decay functions, decayed engagement counts per entity,
event-time windows (tumbling, hopping, sessions), user activity, signal boosts, and the registry
of every feature name `real_time_features` carries.
"""
