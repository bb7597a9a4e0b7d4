"""Workflows: multi-step notifications that wait, check what the user did, and fall back.

``definition.py`` (the JSON shape and the registration check), ``expressions.py``
(CEL conditions), ``projection.py`` (definitions, runs and their timers as a
projection), ``store.py`` (definition reads), ``state.py`` (a run read as of a log
position), ``engine.py`` (the ``workflows`` role: every decision a run takes, appended
as an event), ``explain.py`` (a run's timeline, for ``herald explain`` and the API).
"""
