//! Arbitrary bytes as the client's side of one HTTP/1.1 connection.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    frontends_fuzz::run_connection(data);
});
