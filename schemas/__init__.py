"""The event contract, version 1: typed events, validation with precise errors, JSON Schemas."""
