"""Replay: derived state rebuilt from the log, switched in, or compared with live.

- ``builder.py`` — building a namespace from the log (no consumer group);
- ``rebuild.py`` — ``herald replay``: rebuild into a fresh namespace, then switch;
- ``verify.py`` — ``herald replay --verify``: rebuild into a scratch namespace and diff.
"""
