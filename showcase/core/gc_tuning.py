"""Keep the garbage collector from stalling every open request of the ASGI server.

Each request leaves a little cyclic garbage (Twisted's request objects, asyncio tasks), which only a full
collection frees. By default a full collection runs whenever the young generations have been collected ten
times, which at a few thousand requests/s is several times a second, and each one walks the whole heap for
tens of milliseconds while every open request waits: the page benchmark showed a median of 6 ms and a p95 of
70 ms. Measured with `python -m showcase.exhibits.bench` (20 connections, 800 exhibitors): moving the
start-up heap out of the collector's sight (`gc.freeze`) and running full collections ten times less often
brings the p95 under 10 ms, with the server's memory as flat as before.
"""

import gc

# Young generations as Python's defaults; full collections after 100 collections of the middle one, not 10.
THRESHOLDS = (700, 10, 100)


def tune_for_server() -> None:
    """Call once the application is loaded, before serving."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
