"""The Faust application: topics, agents, tables, checkpointing, web views, metrics, CLI."""
