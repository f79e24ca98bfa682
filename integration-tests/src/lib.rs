//! End-to-end tests of weft through its public facade only; the tests live in `tests/`.
