//! Layer 2/3 behaviour of the interface, driven on the in-memory wire by the
//! deterministic simulator: ARP resolution, retry, failure, expiry and
//! refresh; ping on a subnet and across a gateway; hostile input.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use wirespeed::buf::{BufAlloc, HeapBuf, PacketBuf};
use wirespeed::net::arp::Neighbour;
use wirespeed::net::{InterfaceConfig, Ipv4Cidr, NetEvent, NetStats, SendError};
use wirespeed::port::MemPortConfig;
use wirespeed::sim::{Hook, HostId, Sim};
use wirespeed::wire::checksum;
use wirespeed::wire::{
    ChecksumCaps, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, Icmpv4Packet,
    Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr,
};
use wirespeed::{Duration, Instant};

fn mac(i: u8) -> EthernetAddress {
    EthernetAddress([0x02, 0, 0, 0, 0, i])
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn add(sim: &mut Sim, i: u8, cidr: &str, gateway: Option<&str>) -> HostId {
    let mut cfg = InterfaceConfig::new(mac(i), cidr.parse::<Ipv4Cidr>().unwrap());
    cfg.gateway = gateway.map(ip);
    sim.add_host(cfg, MemPortConfig::new(mac(i))).unwrap()
}

/// Two hosts on 198.18.0.0/24, announcements done.
fn pair(seed: u64) -> (Sim, HostId, HostId) {
    let mut sim = Sim::new(seed);
    let a = add(&mut sim, 1, "198.18.0.2/24", None);
    let b = add(&mut sim, 2, "198.18.0.3/24", None);
    assert!(sim.run_until_idle(Duration::from_secs(1)));
    (sim, a, b)
}

fn replies(events: &[NetEvent]) -> Vec<(Ipv4Addr, u16)> {
    events
        .iter()
        .filter_map(|e| match *e {
            NetEvent::EchoReply { from, seq_no, .. } => Some((from, seq_no)),
            _ => None,
        })
        .collect()
}

fn is_arp_request(f: &[u8]) -> bool {
    f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 1]
}

/// An ARP request that is not an announcement (sender IP != target IP).
fn is_arp_resolution(f: &[u8]) -> bool {
    is_arp_request(f) && f[28..32] != f[38..42]
}

/// Captures every frame sent on the wire (dropping none).
fn capture(sim: &Sim) -> Arc<Mutex<Vec<Vec<u8>>>> {
    let frames = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&frames);
    sim.wire().set_filter(Some(Box::new(move |f: &[u8]| {
        sink.lock().unwrap().push(f.to_vec());
        false
    })));
    frames
}

#[test]
fn gratuitous_arp_at_start() {
    let mut sim = Sim::new(1);
    let frames = capture(&sim);
    let a = add(&mut sim, 1, "198.18.0.2/24", None);
    assert_eq!(sim.host(a).iface.poll_at(), Some(Instant::ZERO));
    assert!(sim.run_until_idle(Duration::from_secs(1)));
    let frames = frames.lock().unwrap();
    assert_eq!(frames.len(), 1);
    let f = &frames[0];
    assert!(is_arp_request(f));
    assert_eq!(f[0..6], [0xff; 6]);
    assert_eq!(f[28..32], [198, 18, 0, 2]);
    assert_eq!(f[38..42], [198, 18, 0, 2]);
    assert_eq!(sim.host(a).stats().arp_tx_announcements, 1);
}

#[test]
fn ping_on_one_subnet() {
    let (mut sim, a, b) = pair(2);
    for seq in 1..=3 {
        sim.ping(a, ip("198.18.0.3"), 7, seq, b"hello").unwrap();
    }
    assert!(sim.run_until_idle(Duration::from_secs(5)));
    let got = replies(&sim.host_mut(a).take_events());
    assert_eq!(
        got,
        vec![
            (ip("198.18.0.3"), 1),
            (ip("198.18.0.3"), 2),
            (ip("198.18.0.3"), 3)
        ]
    );
    let (sa, sb) = (*sim.host(a).stats(), *sim.host(b).stats());
    assert_eq!(sa.arp_tx_requests, 2, "one announcement, one resolution");
    assert_eq!(sa.icmp_tx_echo_requests, 3);
    assert_eq!(sa.icmp_rx_echo_replies, 3);
    assert_eq!(sb.icmp_rx_echo_requests, 3);
    assert_eq!(sb.icmp_tx_echo_replies, 3);
    assert_eq!(sb.arp_tx_replies, 1);
    assert_eq!(sa.total_drops() + sb.total_drops(), 0);
    // B learned A from A's request to it (RFC 826: we are the target).
    assert!(matches!(
        sim.host(b).iface.neighbour(ip("198.18.0.2")),
        Some(Neighbour::Reachable { mac: m, .. }) if m == mac(1)
    ));
}

#[test]
fn lost_arp_request_is_retried_and_the_ping_completes() {
    let (mut sim, a, _b) = pair(3);
    let dropped = Arc::new(Mutex::new(0u32));
    let d = Arc::clone(&dropped);
    sim.wire().set_filter(Some(Box::new(move |f: &[u8]| {
        let mut d = d.lock().unwrap();
        if *d == 0 && is_arp_resolution(f) {
            *d += 1;
            return true;
        }
        false
    })));
    let start = sim.now();
    sim.ping(a, ip("198.18.0.3"), 1, 1, b"x").unwrap();
    assert!(sim.run_until_idle(Duration::from_secs(10)));
    assert_eq!(*dropped.lock().unwrap(), 1);
    assert_eq!(
        replies(&sim.host_mut(a).take_events()),
        vec![(ip("198.18.0.3"), 1)]
    );
    let s = sim.host(a).stats();
    assert_eq!(s.arp_tx_requests, 3, "announcement, lost request, retry");
    assert_eq!(s.arp_resolved, 1);
    assert!(
        sim.now() - start >= Duration::from_secs(1),
        "retry after 1 s"
    );
    assert!(sim.now() - start < Duration::from_secs(2));
}

#[test]
fn waiting_queue_overflow_is_counted() {
    let (mut sim, a, _b) = pair(4);
    let mut results = Vec::new();
    for seq in 0..5 {
        results.push(sim.ping(a, ip("198.18.0.3"), 1, seq, b"q"));
    }
    assert_eq!(
        results,
        vec![
            Ok(()),
            Ok(()),
            Ok(()),
            Err(SendError::ArpQueueFull),
            Err(SendError::ArpQueueFull)
        ]
    );
    assert_eq!(sim.host(a).stats().drop_arp_queue_full, 2);
    assert!(sim.run_until_idle(Duration::from_secs(5)));
    let got: Vec<u16> = replies(&sim.host_mut(a).take_events())
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(got, vec![0, 1, 2], "queued frames go out in order");
}

#[test]
fn resolution_failure_drops_queued_frames() {
    let (mut sim, a, _b) = pair(5);
    let ghost = ip("198.18.0.77");
    let start = sim.now();
    sim.ping(a, ghost, 1, 1, b"a").unwrap();
    sim.ping(a, ghost, 1, 2, b"b").unwrap();
    assert!(sim.run_until_idle(Duration::from_secs(30)));
    let events = sim.host_mut(a).take_events();
    assert_eq!(
        events,
        vec![NetEvent::NeighbourFailed {
            addr: ghost,
            dropped: 2
        }]
    );
    let s = sim.host(a).stats();
    assert_eq!(s.drop_arp_failed, 2);
    assert_eq!(s.arp_tx_requests, 1 + 4, "announcement, request, 3 retries");
    assert_eq!(sim.host(a).iface.neighbour(ghost), None);
    assert_eq!(sim.now() - start, Duration::from_secs(4));
    // Every buffer went back to the pool: the port can still send.
    sim.ping(a, ip("198.18.0.3"), 1, 3, b"c").unwrap();
    assert!(sim.run_until_idle(Duration::from_secs(5)));
    assert_eq!(replies(&sim.host_mut(a).take_events()).len(), 1);
}

#[test]
fn cache_entry_expires_and_is_resolved_again() {
    let (mut sim, a, _b) = pair(6);
    let b_ip = ip("198.18.0.3");
    sim.ping(a, b_ip, 1, 1, b"x").unwrap();
    assert!(sim.run_until_idle(Duration::from_secs(5)));
    assert!(sim.host(a).iface.neighbour(b_ip).is_some());
    let requests = sim.host(a).stats().arp_tx_requests;
    // No traffic: nothing refreshes the entry, which expires after 60 s.
    sim.run_for(Duration::from_secs(61));
    assert_eq!(sim.host(a).iface.neighbour(b_ip), None);
    assert_eq!(sim.host(a).stats().arp_expired, 1);
    assert_eq!(sim.host(a).stats().arp_tx_requests, requests);
    let frames = capture(&sim);
    sim.ping(a, b_ip, 1, 2, b"y").unwrap();
    assert!(sim.run_until_idle(Duration::from_secs(5)));
    assert_eq!(sim.host(a).stats().arp_tx_requests, requests + 1);
    let f = frames.lock().unwrap();
    assert!(
        is_arp_resolution(&f[0]) && f[0][0..6] == [0xff; 6],
        "broadcast"
    );
    assert_eq!(replies(&sim.host_mut(a).take_events()).len(), 2);
}

#[test]
fn entry_in_use_is_refreshed_by_unicast_and_never_lapses() {
    let (mut sim, a, b) = pair(7);
    let b_ip = ip("198.18.0.3");
    sim.ping(a, b_ip, 1, 0, b"x").unwrap();
    assert!(sim.run_until_idle(Duration::from_secs(5)));
    let frames = capture(&sim);
    // A pings every 10 s for 3 minutes: the entry must be refreshed before
    // each expiry, with a unicast request to B, and never disappear.
    for seq in 1..=18 {
        sim.run_for(Duration::from_secs(10));
        assert!(
            matches!(
                sim.host(a).iface.neighbour(b_ip),
                Some(Neighbour::Reachable { .. })
            ),
            "entry lapsed before ping {seq}"
        );
        sim.ping(a, b_ip, 1, seq, b"x").unwrap();
    }
    assert!(sim.run_until_idle(Duration::from_secs(5)));
    assert_eq!(replies(&sim.host_mut(a).take_events()).len(), 19);
    assert_eq!(sim.host(a).stats().arp_expired, 0);
    let f = frames.lock().unwrap();
    let refreshes: Vec<_> = f.iter().filter(|f| is_arp_resolution(f)).collect();
    assert!(refreshes.len() >= 2, "refreshed at least every 55 s");
    assert!(
        refreshes.iter().all(|f| f[0..6] == mac(2).0),
        "refreshes are unicast to the neighbour"
    );
    assert_eq!(
        sim.host(b).stats().arp_tx_replies as usize,
        1 + refreshes.len()
    );
}

/// Rewrites an IPv4 frame for the next hop like a router: new MACs, TTL
/// decremented, header checksum recomputed.
fn forward(mut f: HeapBuf, src: EthernetAddress, dst: EthernetAddress) -> HeapBuf {
    let b = f.as_mut_slice();
    b[0..6].copy_from_slice(&dst.0);
    b[6..12].copy_from_slice(&src.0);
    let ihl = usize::from(b[14] & 0x0f) * 4;
    b[14 + 8] -= 1;
    b[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
    let sum = checksum::finish(checksum::sum(&b[14..14 + ihl]));
    b[14 + 10..14 + 12].copy_from_slice(&sum.to_be_bytes());
    f
}

/// A test-only router: two hosts (R1 on 198.18.0.0/24, R2 on
/// 198.19.0.0/24) whose interfaces answer ARP, with a receive hook that
/// forwards IPv4 not addressed to the router out of the other port, to a
/// statically known neighbour MAC.
#[test]
fn ping_across_the_default_gateway() {
    let mut sim = Sim::new(8);
    let a = add(&mut sim, 1, "198.18.0.2/24", Some("198.18.0.1"));
    let r1 = add(&mut sim, 11, "198.18.0.1/24", None);
    let r2 = add(&mut sim, 12, "198.19.0.1/24", None);
    let b = add(&mut sim, 2, "198.19.0.9/24", Some("198.19.0.1"));
    let hook = |own: Ipv4Addr, out: HostId, out_mac, next_mac| {
        Box::new(move |_now, f: HeapBuf| {
            let s = f.as_slice();
            let ipv4 = s.len() >= 34 && s[12..14] == [0x08, 0x00];
            if ipv4 && s[30..34] != own.octets() {
                Hook::Forward(out, forward(f, out_mac, next_mac))
            } else {
                Hook::Pass(f)
            }
        }) as wirespeed::sim::RxHook
    };
    sim.set_hook(r1, Some(hook(ip("198.18.0.1"), r2, mac(12), mac(2))));
    sim.set_hook(r2, Some(hook(ip("198.19.0.1"), r1, mac(11), mac(1))));
    assert!(sim.run_until_idle(Duration::from_secs(1)));
    let frames = capture(&sim);
    sim.ping(a, ip("198.19.0.9"), 9, 1, b"far").unwrap();
    assert!(sim.run_until_idle(Duration::from_secs(5)));
    assert_eq!(
        replies(&sim.host_mut(a).take_events()),
        vec![(ip("198.19.0.9"), 1)]
    );
    // A resolved the gateway, not the destination, and addressed the echo
    // request to the gateway's MAC with the off-subnet IP.
    let f = frames.lock().unwrap();
    let arp: Vec<_> = f.iter().filter(|f| is_arp_resolution(f)).collect();
    // B answers to the MAC the request came from (the router), so only A
    // resolves anything: its gateway, never the off-subnet destination.
    assert_eq!(arp.len(), 1, "A asks for its gateway only");
    assert_eq!(arp[0][6..12], mac(1).0);
    assert_eq!(arp[0][38..42], [198, 18, 0, 1]);
    let from_a: Vec<_> = f
        .iter()
        .filter(|f| f[6..12] == mac(1).0 && f[12..14] == [0x08, 0x00])
        .collect();
    assert_eq!(from_a.len(), 1);
    assert_eq!(from_a[0][0..6], mac(11).0, "to the gateway's MAC");
    assert_eq!(from_a[0][26..30], [198, 18, 0, 2]);
    assert_eq!(from_a[0][30..34], [198, 19, 0, 9], "to the off-subnet IP");
    assert!(sim.host(a).iface.neighbour(ip("198.19.0.9")).is_none());
    assert_eq!(sim.host(b).stats().icmp_tx_echo_replies, 1);
    // No route without a gateway.
    let r = sim.ping(r1, ip("203.0.113.1"), 1, 1, b"");
    assert_eq!(r, Err(SendError::NoRoute));
    assert_eq!(sim.host(r1).stats().drop_no_route, 1);
}

// ----- hostile input -----

const INJ_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0xee]);

fn echo_frame(dst_mac: EthernetAddress, dst: Ipv4Addr) -> Vec<u8> {
    let caps = ChecksumCaps::SOFTWARE;
    let icmp = Icmpv4Repr::EchoRequest {
        ident: 0x4242,
        seq_no: 1,
        data: b"hostile",
    };
    let ipr = Ipv4Repr {
        src_addr: ip("198.18.0.50"),
        dst_addr: dst,
        protocol: IpProtocol::Icmp,
        payload_len: icmp.buffer_len(),
        ttl: 64,
        dscp_ecn: 0,
        ident: 1,
    };
    let eth = EthernetRepr {
        src_addr: INJ_MAC,
        dst_addr: dst_mac,
        ethertype: EtherType::Ipv4,
        vlan: None,
    };
    let mut v = vec![0u8; 14 + ipr.buffer_len()];
    eth.emit(&mut EthernetFrame::new_unchecked(&mut v[..14]));
    ipr.emit(&mut Ipv4Packet::new_unchecked(&mut v[14..34]), &caps);
    icmp.emit(&mut Icmpv4Packet::new_unchecked(&mut v[34..]), &caps);
    v
}

fn fix_ip_checksum(v: &mut [u8]) {
    v[24..26].copy_from_slice(&[0, 0]);
    let sum = checksum::finish(checksum::sum(&v[14..34]));
    v[24..26].copy_from_slice(&sum.to_be_bytes());
}

fn arp_frame(op: u16, target: Ipv4Addr) -> Vec<u8> {
    let mut v = vec![0xff; 6];
    v.extend_from_slice(&INJ_MAC.0);
    v.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4]);
    v.extend_from_slice(&op.to_be_bytes());
    v.extend_from_slice(&INJ_MAC.0);
    v.extend_from_slice(&[198, 18, 0, 50]);
    v.extend_from_slice(&[0; 6]);
    v.extend_from_slice(&target.octets());
    v
}

/// Each case: a name, the frame, the counter that must go up by one.
fn hostile_cases(
    b_mac: EthernetAddress,
    b_ip: Ipv4Addr,
) -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let good = echo_frame(b_mac, b_ip);
    let mut cases = Vec::new();
    cases.push(("truncated ethernet", good[..10].to_vec(), "drop_truncated"));
    cases.push((
        "truncated vlan tag",
        {
            let mut v = good[..15].to_vec();
            v[12..14].copy_from_slice(&[0x81, 0x00]);
            v
        },
        "drop_truncated",
    ));
    cases.push(("truncated ipv4", good[..14 + 12].to_vec(), "drop_truncated"));
    let mut v = good.clone();
    v[14] = 0x44;
    fix_ip_checksum(&mut v);
    cases.push(("bad ihl", v, "drop_malformed"));
    let mut v = good.clone();
    v[16..18].copy_from_slice(&200u16.to_be_bytes());
    fix_ip_checksum(&mut v);
    cases.push(("total length past buffer", v, "drop_truncated"));
    let mut v = good.clone();
    v[24] ^= 0x55;
    cases.push(("bad ipv4 checksum", v, "drop_bad_checksum"));
    let mut v = good.clone();
    v[36] ^= 0x55;
    cases.push(("bad icmp checksum", v, "drop_bad_checksum"));
    let mut v = good.clone();
    v[14] = 0x65;
    fix_ip_checksum(&mut v);
    cases.push(("wrong version", v, "drop_malformed"));
    let mut v = good.clone();
    v[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x77]);
    cases.push(("not our mac", v, "drop_not_our_mac"));
    let mut v = good.clone();
    v[0..6].copy_from_slice(&[0x01, 0x00, 0x5e, 0, 0, 1]);
    cases.push(("multicast mac", v, "drop_not_our_mac"));
    cases.push((
        "not our ip",
        echo_frame(b_mac, ip("198.18.0.99")),
        "drop_not_our_ip",
    ));
    let mut v = good.clone();
    v[12..14].copy_from_slice(&[0x86, 0xdd]);
    cases.push(("unsupported ethertype", v, "drop_unsupported_ethertype"));
    let mut v = good.clone();
    v.splice(12..12, [0x81, 0x00, 0x00, 0x05, 0x81, 0x00, 0x00, 0x06]);
    cases.push(("qinq", v, "drop_unsupported_ethertype"));
    let mut v = good.clone();
    v.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    cases.push(("vlan we are not on", v, "drop_wrong_vlan"));
    let mut v = good.clone();
    v[20] |= 0x20; // more fragments
    fix_ip_checksum(&mut v);
    cases.push(("fragment", v, "drop_fragment"));
    let mut v = good.clone();
    v[26..30].copy_from_slice(&[255, 255, 255, 255]);
    fix_ip_checksum(&mut v);
    cases.push(("broadcast source", v, "drop_martian_source"));
    let mut v = echo_frame(EthernetAddress::BROADCAST, ip("198.18.0.255"));
    v[0..6].copy_from_slice(&[0xff; 6]);
    cases.push(("broadcast echo", v, "drop_broadcast_echo"));
    cases.push((
        "arp for another host",
        arp_frame(1, ip("198.18.0.99")),
        "arp_not_for_us",
    ));
    let mut v = arp_frame(1, b_ip);
    v[15] = 6; // hardware type 6 (IEEE 802): not Ethernet
    cases.push(("malformed arp", v, "drop_malformed"));
    cases.push((
        "truncated arp",
        arp_frame(1, b_ip)[..30].to_vec(),
        "drop_truncated",
    ));
    let mut v = arp_frame(1, b_ip);
    v[20..22].copy_from_slice(&9u16.to_be_bytes());
    cases.push(("unknown arp operation", v, "drop_malformed"));
    let mut v = good.clone();
    v[6..12].copy_from_slice(&[0x01, 0, 0, 0, 0, 1]);
    cases.push(("multicast source mac", v, "drop_malformed"));
    cases
}

fn counter(s: &NetStats, name: &str) -> u64 {
    s.iter().find(|(n, _)| *n == name).unwrap().1
}

fn inject(sim: &mut Sim, host: HostId, bytes: &[u8]) {
    sim.with_iface(host, |iface, now, alloc| {
        let mut buf = alloc.alloc().unwrap();
        buf.append(bytes.len()).unwrap().copy_from_slice(bytes);
        assert!(iface.receive(now, buf, alloc).is_none());
    });
}

#[test]
fn hostile_input_is_dropped_and_counted_exactly() {
    let (mut sim, a, b) = pair(9);
    let b_ip = ip("198.18.0.3");
    // Sanity: the unmodified frame is answered.
    let good = echo_frame(mac(2), b_ip);
    inject(&mut sim, b, &good);
    assert_eq!(sim.host(b).stats().icmp_tx_echo_replies, 1);
    assert_eq!(sim.host(b).stats().total_drops(), 0);

    let cases = hostile_cases(mac(2), b_ip);
    for (seq, (name, frame, expect)) in cases.iter().enumerate() {
        // A valid exchange runs alongside every injection.
        sim.ping(a, b_ip, 3, seq as u16, b"alongside").unwrap();
        sim.step();
        let before = *sim.host(b).stats();
        inject(&mut sim, b, frame);
        let after = *sim.host(b).stats();
        for (n, v) in after.iter() {
            let was = counter(&before, n);
            let want = if n == *expect {
                was + 1
            } else if n.starts_with("drop_") || n == "arp_not_for_us" {
                was
            } else {
                continue;
            };
            assert_eq!(v, want, "case {name:?}: counter {n}");
        }
        assert_eq!(
            after.icmp_tx_echo_replies, before.icmp_tx_echo_replies,
            "case {name:?} must not be answered"
        );
        sim.step();
    }
    assert!(sim.run_until_idle(Duration::from_secs(5)));
    let got = replies(&sim.host_mut(a).take_events());
    assert_eq!(got.len(), cases.len(), "every valid ping answered");
    assert_eq!(sim.host(a).stats().total_drops(), 0);
    assert!(
        sim.host(b).iface.neighbour(ip("198.18.0.50")).is_none(),
        "learned nothing"
    );
}

#[test]
fn hostile_input_through_the_wire() {
    // The same frames, sent by a raw port on the wire instead of injected
    // directly: the switch and the receive loop must not change the counts.
    let (mut sim, a, b) = pair(10);
    let mut raw = sim
        .wire()
        .add_port(MemPortConfig::new(INJ_MAC))
        .unwrap()
        .pop()
        .unwrap();
    use wirespeed::port::Device;
    let cases: Vec<_> = hostile_cases(mac(2), ip("198.18.0.3"))
        .into_iter()
        .filter(|(_, f, _)| f.len() >= 14 && f[0..6] != [0x02, 0, 0, 0, 0, 0x77])
        .collect();
    sim.ping(a, ip("198.18.0.3"), 4, 0, b"x").unwrap();
    assert!(sim.run_until_idle(Duration::from_secs(5)));
    let before = *sim.host(b).stats();
    for (_, frame, _) in &cases {
        let mut buf = raw.alloc_tx().unwrap();
        buf.append(frame.len()).unwrap().copy_from_slice(frame);
        raw.tx_burst(sim.now(), &mut vec![buf]);
        sim.ping(a, ip("198.18.0.3"), 4, 0, b"x").unwrap();
    }
    assert!(sim.run_until_idle(Duration::from_secs(5)));
    let after = *sim.host(b).stats();
    let mut want = NetStats::default();
    for (_, _, expect) in &cases {
        for (n, _) in NetStats::default().iter() {
            if n == *expect {
                match n {
                    "drop_truncated" => want.drop_truncated += 1,
                    "drop_malformed" => want.drop_malformed += 1,
                    "drop_bad_checksum" => want.drop_bad_checksum += 1,
                    "drop_not_our_mac" => want.drop_not_our_mac += 1,
                    "drop_not_our_ip" => want.drop_not_our_ip += 1,
                    "drop_unsupported_ethertype" => want.drop_unsupported_ethertype += 1,
                    "drop_wrong_vlan" => want.drop_wrong_vlan += 1,
                    "drop_fragment" => want.drop_fragment += 1,
                    "drop_martian_source" => want.drop_martian_source += 1,
                    "drop_broadcast_echo" => want.drop_broadcast_echo += 1,
                    "arp_not_for_us" => want.arp_not_for_us += 1,
                    other => panic!("unexpected counter {other}"),
                }
            }
        }
    }
    for (n, v) in want.iter() {
        if n.starts_with("drop_") || n == "arp_not_for_us" {
            assert_eq!(counter(&after, n) - counter(&before, n), v, "{n}");
        }
    }
    assert_eq!(
        replies(&sim.host_mut(a).take_events()).len(),
        cases.len() + 1
    );
}

#[test]
fn deterministic_for_a_seed() {
    fn run(seed: u64) -> (Instant, Vec<(&'static str, u64)>, Vec<NetEvent>) {
        let mut sim = Sim::new(seed);
        let imp = wirespeed::port::Impairment {
            loss: 0.2,
            delay: Duration::from_micros(50),
            jitter: Duration::from_micros(20),
            ..wirespeed::port::Impairment::NONE
        };
        let mut ids = Vec::new();
        for (i, addr) in [(1, "198.18.0.2/24"), (2, "198.18.0.3/24")] {
            let cfg = InterfaceConfig::new(mac(i), addr.parse().unwrap());
            let port = MemPortConfig {
                impairment: imp,
                ..MemPortConfig::new(mac(i))
            };
            ids.push(sim.add_host(cfg, port).unwrap());
        }
        for seq in 0..20 {
            let _ = sim.ping(ids[0], ip("198.18.0.3"), 1, seq, b"d");
            sim.run_for(Duration::from_millis(300));
        }
        sim.run_until_idle(Duration::from_secs(10));
        let stats = sim.host(ids[0]).stats().iter().collect();
        (sim.now(), stats, sim.host_mut(ids[0]).take_events())
    }
    let first = run(42);
    assert_eq!(first, run(42));
    assert!(!replies(&first.2).is_empty());
}
