"""Pure analytics over pandas/numpy data: forecasts, anomalies and their contributors, failure
signatures. No store access here: the query services read the rollups and call these."""
