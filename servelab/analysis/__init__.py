"""Analysis: tables and judgements made from measured runs (calibration, findings, timelines, costs).

It sits above the runtime (server, load generator, backends, simulator), whose runs it reads, and
below the plots and the lab session, which show what it computes.
"""
