"""Utilities: atomic outputs and run folders, bounded parsing, config-section base, lazy exports."""

from climatune.utils.atomic import (
    LOCK,
    STAMP,
    atomic_path,
    check_new_path,
    check_not_input,
    clean_stale,
    other_rank,
    prepare_output_dir,
    releases_outputs,
)
from climatune.utils.bounded import (
    MAX_DEPTH,
    MAX_NODES,
    check_small,
    load_json,
    load_yaml,
    read_text,
)
from climatune.utils.lazy import lazy_exports
from climatune.utils.openmp import prefer_passive_openmp
from climatune.utils.settings import Section

__all__ = [
    "atomic_path",
    "check_new_path",
    "check_not_input",
    "check_small",
    "clean_stale",
    "lazy_exports",
    "load_json",
    "load_yaml",
    "LOCK",
    "MAX_DEPTH",
    "MAX_NODES",
    "other_rank",
    "prefer_passive_openmp",
    "prepare_output_dir",
    "read_text",
    "releases_outputs",
    "Section",
    "STAMP",
]
