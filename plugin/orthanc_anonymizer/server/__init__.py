"""The plugin inside Orthanc: routes, jobs, workers, ingest. Only ``glue`` imports ``orthanc``."""
