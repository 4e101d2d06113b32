"""The lean runtime: segmentation → masking/composite → 4× SR without torch.

Only NumPy (and ONNX Runtime / TensorRT / cuda-python where present) may be
imported here: this package is what runs inside the device. Read it along a
frame's path (DESIGN.md §1):

- :mod:`.manifest`: the models directory's ``models.json`` (networks, variants, hashes, gates);
- :mod:`.backends`: a loader + runner per backend, and :func:`~.backends.open_runners` (which backend,
  which variant, and why);
- :mod:`.engines`: TensorRT engines: build profiles, sidecar manifests, build, load;
- :mod:`.session`: :func:`~.session.open_session`, the one way ``enhance``, ``run`` and ``bench`` open
  models → runners → pipeline;
- :mod:`.pipeline`: the host pipeline, one frame through NumPy stages (reference, mask, tiling, projection);
- :mod:`.gpu`: the same frame on one CUDA stream (kernels, device nets, CUDA calls);
- :mod:`.live` (sources, capture, loop) and :mod:`.sinks` (window, web viewer, recorder): ``skinedge run``;
- :mod:`.enhance`: ``skinedge enhance``; :mod:`.bench`: ``skinedge bench``;
- :mod:`.clinical`: what a clinic needs of an output (provenance, departure map, DICOM, PACS);
- :mod:`.scale`: beyond one machine (Ray Data, Triton).
"""
