"""A real RTSP server for the streaming tests: GStreamer's gst-rtsp-server (Debian's gir1.2-gst-rtsp-server-1.0),
run by the system Python that has PyGObject (``/usr/bin/python3 rtsp_server.py PORT``).

Serves ``rtsp://127.0.0.1:PORT/live``: a moving test pattern, 320×240 at 15 fps, as RTP/JPEG over TCP or UDP.
Prints ``ready`` once it listens. SIGSTOP freezes it (connections stay open, no frames), SIGCONT resumes it,
SIGTERM/SIGKILL take it down.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

LAUNCH = ("( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1 "
          "! videoconvert ! video/x-raw,format=I420 ! jpegenc quality=85 ! rtpjpegpay name=pay0 pt=26 )")


def main() -> None:
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(sys.argv[1])
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(LAUNCH)
    factory.set_shared(True)
    server.get_mount_points().add_factory("/live", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{sys.argv[1]}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
