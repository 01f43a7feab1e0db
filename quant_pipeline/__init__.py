"""quant_pipeline: equity data to investable decisions, as Dagster assets over a DuckDB warehouse.

Importing the package sets one process-wide allocator option, before polars is loaded: polars'
allocator (jemalloc, which reads ``_RJEM_MALLOC_CONF`` once, when polars loads) gives freed pages
back to the system after 200 ms instead of its default 10 s. A run's steps free gigabytes of
frames one after another; with the default the next step's peak sat on top of the last one's
freed pages (3,000-ticker signal step alone: 2,558-2,757 MiB peak by default, 2,360-2,369 MiB
with 200 ms, 3% slower; 0 ms was 50% slower). A value the user set is kept.
"""

import os

ALLOCATOR_CONF = "dirty_decay_ms:200,muzzy_decay_ms:200"
os.environ.setdefault("_RJEM_MALLOC_CONF", ALLOCATOR_CONF)
