"""The ranked home mixer: pure parts, in the shape of Twitter's product-mixer.

A request runs a list of small named components (`pipeline.RankedPipelineConfig`): candidate
sources, one hydrator, filters (each reports what it removed and why), one scorer, selectors and
side effects. Nothing here does I/O or reads a clock: the caller implements the Protocols in
`components` (sources, hydrator, served recorder) against Redis and passes `now_ms` in the query.

| module | what |
| --- | --- |
| `features` | `CandidateFeatures`, and the names of the real-time features it is read from |
| `scoring` | engagement probabilities, Twitter's weights, `score` |
| `calibration` | per-kind Platt calibration fitted online, calibration error |
| `components` | identifiers, `Query`, `Candidate`, base classes and the caller's Protocols |
| `filters`, `scorers`, `selectors` | the concrete components |
| `pipeline` | `RankedPipeline` and its config, `Page` |
| `adaptation` | A/B buckets and a Thompson-sampling bandit over named weight vectors |
"""
