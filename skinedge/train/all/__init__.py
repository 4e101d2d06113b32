"""``skinedge train all``: real data in, a validated models directory out, in one resumable command.

Stages, each finished once (``state.json`` records it): fingerprint → split → cache → seg → sr → export →
calibrate → report. A kill or Ctrl-C at any point is resumed by running the same command again.
"""
