"""Data only: the shipped gate files and pipeline configs, installed with tunegate as ``tunegate.configs``.

``tunegate.evals.gate.SHIPPED_GATES`` knows the gate files by name (``--gate dpo`` is ``gate.yaml``,
``--gate sft`` is ``gate-sft.yaml``), so they resolve from any directory, not only inside a clone.
"""
