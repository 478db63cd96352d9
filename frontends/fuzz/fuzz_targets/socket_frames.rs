//! Arbitrary bytes through the unix-socket frame decoder, fed in the pieces
//! the input's first byte chooses: decoding must never panic, must consume
//! exactly what each frame declares, and must re-encode to the same bytes.
#![no_main]

use bytes::BytesMut;
use frontends::unix::frame::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut buf = BytesMut::new();
    let mut consumed = 0;
    for piece in data.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match decode(&mut buf) {
                Ok(Some(frame)) => {
                    let mut again = BytesMut::new();
                    encode(frame.kind, frame.tag, &frame.payload, &mut again);
                    assert_eq!(&again[..], &data[consumed..consumed + again.len()]);
                    consumed += again.len();
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
