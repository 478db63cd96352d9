//! Integration tests: each starts the real `hashd` binary.

mod api;
mod cli_faults;
mod cluster;
mod conformance;
mod durability;
mod errors;
mod integrity;
mod local;
mod reliability;
mod shutdown;
mod util;
