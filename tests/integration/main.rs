//! Integration tests: each starts the real `hashd` binary.

mod api;
mod api_contract;
mod cli_faults;
mod cli_formats;
mod cluster;
mod conformance;
mod coreutils_tests;
mod durability;
mod errors;
mod events;
mod integrity;
mod local;
mod operations;
mod reliability;
mod service;
mod shutdown;
mod tls;
mod util;
