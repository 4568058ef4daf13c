//! The machine on Windows.
