"""Operator tooling: the pipeline's status (status.py) and the dead-letter tool (deadletters.py).

Rendering for the terminal lives in the CLI (ebackpack/cli/render.py).
"""
