"""``skinedge run``: frames from a camera or a stream through the pipeline to the sinks.

- :mod:`.sources`: one URI factory (``csi://0``, ``/dev/video0``, ``rtsp://…``, a video file, an image folder);
- :mod:`.capture`: a thread keeping only the latest frame, as a camera drops frames;
- :mod:`.loop`: the main loop (capture, process, show, record) and the ``run`` command around it.
"""
