//! End-to-end tests of the project's binaries working together on a local
//! cluster of real parts (see `egress_testkit::cluster`). The tests live in
//! `tests/`; this crate has no code of its own.
