"""Training stages over TRL: the method registry, stage runner, config reader and data builders."""

from pathlib import Path

#: The bundled demo pipeline (package data): organism -> SFT as "Tiny" -> identity DPO to "Deep Tiny".
DEMO_CONFIG: Path = Path(__file__).resolve().parent / "demo.yaml"
