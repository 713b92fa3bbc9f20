"""Operator commands' work, behind `homemixer reset` and `homemixer feeds` (streams/cli.py)."""
