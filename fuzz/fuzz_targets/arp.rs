//! ARP parser: no panic on any input; whatever parses re-emits to a packet
//! that parses to the same representation.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wirespeed::wire::{ArpPacket, ArpRepr};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = ArpPacket::new_checked(data) else {
        return;
    };
    let Ok(repr) = ArpRepr::parse(&packet) else {
        return;
    };
    let mut out = vec![0u8; repr.buffer_len()];
    let mut p = ArpPacket::new_unchecked(&mut out[..]);
    repr.emit(&mut p);
    let again = ArpRepr::parse(&ArpPacket::new_checked(&out[..]).expect("emitted ARP too short"))
        .expect("emitted ARP does not parse");
    assert_eq!(repr, again);
});
