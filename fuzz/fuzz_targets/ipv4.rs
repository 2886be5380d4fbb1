//! IPv4 parser: no panic on any input, with checksums verified and trusted;
//! whatever parses re-emits to a header that parses to the same representation.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wirespeed::wire::checksum::Checksum;
use wirespeed::wire::{ChecksumCaps, Ipv4Packet, Ipv4Repr};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Ipv4Packet::new_checked(data) else {
        return;
    };
    let _ = (
        packet.is_fragment(),
        packet.verify_checksum(),
        packet.payload().len(),
    );
    let trusting = ChecksumCaps {
        ipv4: Checksum::None,
        ..ChecksumCaps::SOFTWARE
    };
    let _ = Ipv4Repr::parse(&packet, &ChecksumCaps::SOFTWARE);
    let Ok(repr) = Ipv4Repr::parse(&packet, &trusting) else {
        return;
    };
    let mut out = vec![0u8; repr.buffer_len() + repr.payload_len];
    let mut p = Ipv4Packet::new_unchecked(&mut out[..]);
    repr.emit(&mut p, &ChecksumCaps::SOFTWARE);
    let p = Ipv4Packet::new_checked(&out[..]).expect("emitted IPv4 too short");
    assert!(p.verify_checksum());
    let again = Ipv4Repr::parse(&p, &ChecksumCaps::SOFTWARE).expect("emitted IPv4 does not parse");
    assert_eq!(repr, again);
});
