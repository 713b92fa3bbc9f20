"""`mode=ranked`: the mixer's Redis side. Candidate sources, the hydrator and its script, the
served recorder, the reader that runs `streams.mixer`'s pipeline, the bandit's arm counts, the
calibration's served outcomes and the viewer-feedback store. The mixer itself stays pure.
"""
