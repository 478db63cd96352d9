//! Arbitrary bytes as the body of a multipart upload (boundary `XyZ`) after
//! a fixed, valid request head.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = frontends_fuzz::multipart_head(data.len());
    input.extend_from_slice(data);
    frontends_fuzz::run_connection(&input);
});
