"""The reproduction study (``experiments/reproduction.py``) in parts: ``arms`` (scales and arms), ``steps`` (running
and resuming bundle subprocesses), ``training`` (each arm's bundle commands), ``drive`` (the cross-domain check),
``tables``, ``models``, ``figures`` and ``representation`` (the analysis of finished steps)."""
