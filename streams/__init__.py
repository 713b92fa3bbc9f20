"""homemixer: reusable streaming parts (codecs, state, parser, sinks) and the Faust app."""
