"""``skinedge bench``: per-stage latency of the pipeline per backend and precision.

- :mod:`.run`: the configurations, the frames, the measurement of each row;
- :mod:`.env`: what the numbers were measured on (CPU, GPU, versions, memory);
- :mod:`.report`: the JSON schema, the table and the bar chart.
"""
