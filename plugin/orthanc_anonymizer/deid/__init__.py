"""The de-identification engine: pure pydicom, never imports the Orthanc side (``server``).

One module per job:

- :mod:`.engine`: the top: ``anonymize_dataset``, ``anonymize_bytes``, ``read_instance``; re-exports the names
  callers use (settings, report, reader, writer).
- :mod:`.settings`, :mod:`.report`: what one anonymization takes (``AnonymizationSettings``) and gives back
  (``AnonymizationReport``, one ``Change`` per attribute).
- :mod:`.reading`: parse and check the input file; the header only where the pixel data passes through.
- :mod:`.walk`: the walk over the data set, every element at every depth getting its action; then the patient's
  identity, ages and the file meta.
- :mod:`.deidentification_method`: the attributes that say how the instance was de-identified (PS3.15 E.1.1).
- :mod:`.writing`: the rebuilt file meta and the bytes written.
- :mod:`.values`, :mod:`.elements`: checks on values; small facts about one element (VR, tag text).
- :mod:`.actions`, :mod:`.profiles`, :mod:`.profile_files`, :mod:`.weakening`: the action codes and text cleaning,
  options and profiles, rule files, rules that weaken the profile.
- :mod:`.uids`, :mod:`.identity`: keyed UIDs, pseudonyms and date shifts; chosen identities.
- :mod:`.verify`, :mod:`.data_set_end`: the residual-PHI check, and where a written data set ends.
- :mod:`.pixels`: Clean Pixel Data (rules, plan, codecs, OCR, preview).
- :mod:`.standard`: the PS3.15 tables as data.
- :mod:`.pydicom_private`: the only place pydicom internals are read (no public API for them).
"""
