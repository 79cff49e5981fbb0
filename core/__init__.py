"""Plumbing every layer imports: errors and exit codes, atomic files, registries, typed configs, progress, env.

    tunegate.core.errors        TunegateError (exit 2), GateFailed (exit 1) and their kinds
    tunegate.core.files         atomic JSON/YAML writes and reads that name the file and field on bad input
    tunegate.core.registry      Registry: name -> "module:attr", imported when first used
    tunegate.core.typed_config  frozen dataclasses from mappings, with unknown/missing/mistyped field errors
    tunegate.core.progress      progress bars, phase lines and JSON events (--quiet / --log-format)
    tunegate.core.env           provenance of a run (library versions, git sha, hardware) and CPU load

It imports nothing else of tunegate; evals, training, reports and the app all sit on it.
"""
