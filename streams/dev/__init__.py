"""For one machine: the embedded broker (Tansu) and Redis that `homemixer up` and the tests start,
and the synthetic workload of `homemixer up --demo`.
"""
