"""Placeholder: the owning work item replaces this module."""


def register(subparsers) -> None:
    return None
