"""Clinical output: what makes an enhanced picture fit for a clinic.

- :mod:`.provenance`: the record every output carries (models by hash, settings, the consistency residual);
- :mod:`.departure`: where an enhanced view departs from the plain up-scale (the viewer's toggle, ``--hallucination``);
- :mod:`.dicom_out`: derived DICOM objects (Secondary Capture) and the lesion Segmentation;
- :mod:`.pacs`: C-STORE to a PACS.
"""
