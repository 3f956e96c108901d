//! Shared helpers for the compatibility tests and tools.
