//! ICMPv4 parser: no panic on any input; whatever parses re-emits to a
//! message that parses to the same representation.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wirespeed::wire::checksum::Checksum;
use wirespeed::wire::{ChecksumCaps, Icmpv4Packet, Icmpv4Repr};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Icmpv4Packet::new_checked(data) else {
        return;
    };
    let _ = Icmpv4Repr::parse(&packet, &ChecksumCaps::SOFTWARE);
    let trusting = ChecksumCaps {
        icmpv4: Checksum::None,
        ..ChecksumCaps::SOFTWARE
    };
    let Ok(repr) = Icmpv4Repr::parse(&packet, &trusting) else {
        return;
    };
    let mut out = vec![0u8; repr.buffer_len()];
    let mut p = Icmpv4Packet::new_unchecked(&mut out[..]);
    repr.emit(&mut p, &ChecksumCaps::SOFTWARE);
    let p = Icmpv4Packet::new_checked(&out[..]).expect("emitted ICMP too short");
    let again =
        Icmpv4Repr::parse(&p, &ChecksumCaps::SOFTWARE).expect("emitted ICMP does not parse");
    assert_eq!(repr, again);
});
