//! Load generators for `make bench` (placeholder; see the binaries).
