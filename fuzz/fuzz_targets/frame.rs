//! Whole frames into the layer 2/3 host: Ethernet (with 802.1Q), ARP, IPv4,
//! ICMP and whatever is delivered upward, then the TCP parser on delivered
//! TCP payloads. Nothing may panic, allocate without bound or leak a buffer:
//! every frame handed in is delivered, answered or dropped, and each buffer
//! comes back out of the interface.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use wirespeed::buf::{HeapBuf, HeapPool, PacketBuf};
use wirespeed::net::{Interface, InterfaceConfig};
use wirespeed::time::{Duration, Instant};
use wirespeed::wire::{ChecksumCaps, EthernetAddress, IpProtocol, TcpPacket, TcpRepr};

const MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 2]);

fuzz_target!(|data: &[u8]| {
    // The input is split into frames at a 0xff 0xfe 0xfd marker so one run
    // can drive a sequence (ARP then IPv4, say) through one interface.
    let mut config = InterfaceConfig::new(MAC, "198.18.7.2/24".parse().expect("cidr"));
    config.gateway = Some(Ipv4Addr::new(198, 18, 7, 1));
    config.accept_multicast = true;
    let mut now = Instant::from_millis(1);
    let mut iface: Interface<HeapBuf> = Interface::new(config, now).expect("config");
    let mut pool = HeapPool::new(2048, 128, 64);
    let mut sent = 0usize;
    for frame in data.split(|&b| b == 0xff).filter(|f| !f.is_empty()) {
        now += Duration::from_millis(250);
        let buf = HeapBuf::from_slice(frame, 128);
        if let Some(d) = iface.receive(now, buf, &mut pool) {
            assert!(d.buf.len() == d.repr.payload_len);
            if d.repr.protocol == IpProtocol::Tcp {
                if let Ok(p) = TcpPacket::new_checked(d.buf.as_slice()) {
                    let _ = TcpRepr::parse(
                        &p,
                        d.repr.src_addr,
                        d.repr.dst_addr,
                        &ChecksumCaps::SOFTWARE,
                    );
                }
            }
        }
        if iface.poll_at().is_some_and(|t| t <= now) {
            iface.handle_timeout(now, &mut pool);
        }
        while let Some(out) = iface.poll_transmit() {
            assert!(out.len() >= 14 && out.len() <= 1518);
            sent += 1;
            pool.recycle(out);
        }
        while let Some(b) = iface.poll_recycle() {
            pool.recycle(b);
        }
        while iface.poll_event().is_some() {}
    }
    // Ping out through the gateway, then let time run so ARP gives up.
    let _ = iface.send_ping(
        now,
        Ipv4Addr::new(203, 0, 113, 9),
        1,
        1,
        &[0u8; 16],
        &mut pool,
    );
    for _ in 0..8 {
        now += Duration::from_secs(1);
        iface.handle_timeout(now, &mut pool);
        while let Some(out) = iface.poll_transmit() {
            sent += 1;
            pool.recycle(out);
        }
        while let Some(b) = iface.poll_recycle() {
            pool.recycle(b);
        }
        while iface.poll_event().is_some() {}
    }
    let _ = sent;
    assert!(iface.stats().eth_rx_frames as usize <= data.len());
});
