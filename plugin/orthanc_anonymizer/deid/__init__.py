"""The de-identification engine: pure pydicom, never imports the Orthanc side (``server``)."""
