"""Ingest: the event contract (`events`), the write plan of a batch (`plan`: rollups, raw
partitions, live state), the service that validates and commits batches (`service`) and the
Python client producers use (`client`)."""
