"""homemixer's reusable parts, grouped by domain; `topologies/` wires them into the seed design's nodes.

At the top: `app` (the one Faust App), `settings` (every knob, read once from the environment),
`snowflake` (tweet ids) and `cli` (the `homemixer` command and the composition root: the only
module here that imports `topologies`). Everything else lives in a subpackage that owns one domain:
`runtime`, `state`, `ingest`, `features`, `graph`, `timelines`, `serving`, `mixer`, `ranked`,
`http` and `dev`. ARCHITECTURE.md walks through them.
"""
