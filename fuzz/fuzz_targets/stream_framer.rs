//! Any bytes, cut into reads at fuzzer-chosen points, through the TCP/TLS stream framer.
//! Invariants: no panic, no frame above the size limit, never more output than input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use teamsgw_sip::framing::{Frame, StreamFramer};
use teamsgw_sip::message::Limits;

fuzz_target!(|data: &[u8]| {
    let Some((&cuts, data)) = data.split_first() else { return };
    let limits = Limits { max_message_size: 4096, max_headers: 64 };
    let mut framer = StreamFramer::new(limits);
    let step = usize::from(cuts % 64) + 1;
    let mut out = 0usize;
    for chunk in data.chunks(step) {
        framer.extend(chunk);
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Message(m))) => {
                    assert!(m.len() <= limits.max_message_size);
                    out += m.len();
                }
                Ok(Some(Frame::Ping)) => out += 4,
                Ok(None) => break,
                Err(_) => return, // the stream would be closed
            }
        }
    }
    assert!(out + framer.buffered() <= data.len());
});
