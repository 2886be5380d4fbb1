//! The whole stack over the in-memory wire: Ethernet, ARP, IPv4 and TCP,
//! many connections per host, listeners, RST for closed ports, SYN cookies
//! under a SYN flood, and TIME-WAIT reuse, in virtual time.

use std::net::Ipv4Addr;

use wirespeed::buf::PacketBuf;
use wirespeed::net::{Interface, InterfaceConfig};
use wirespeed::port::mem::{Impairment, MemDevice, MemPortConfig, MemWire};
use wirespeed::port::Device;
use wirespeed::rt::{DeviceAlloc, TcpHost};
use wirespeed::tcp::{CloseReason, ConnId, Event, ListenConfig, State, TcpConfig, TcpStack};
use wirespeed::wire::{
    ChecksumCaps, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, IpProtocol, Ipv4Packet,
    Ipv4Repr, TcpFlags, TcpPacket, TcpRepr, TcpSeqNumber,
};
use wirespeed::{Duration, Instant};

const PORT: u16 = 80;

fn mac(last: u8) -> EthernetAddress {
    EthernetAddress([0x02, 0, 0x5e, 0, 0, last])
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, last)
}

/// One host: a [`TcpHost`] on a mem port, with the events it raised.
struct Node {
    host: TcpHost<MemDevice>,
    events: Vec<(ConnId, Event)>,
}

impl Node {
    fn new(wire: &MemWire, last: u8, tcp: TcpConfig, impairment: Impairment) -> Node {
        Node::with_pool(wire, last, tcp, impairment, 1 << 16)
    }

    fn with_pool(
        wire: &MemWire,
        last: u8,
        tcp: TcpConfig,
        impairment: Impairment,
        pool_limit: usize,
    ) -> Node {
        let dev = wire
            .add_port(MemPortConfig {
                impairment,
                pool_limit,
                ..MemPortConfig::new(mac(last))
            })
            .expect("port")
            .pop()
            .expect("one queue");
        let cidr = format!("198.18.0.{last}/24").parse().expect("cidr");
        let iface =
            Interface::new(InterfaceConfig::new(mac(last), cidr), Instant::ZERO).expect("iface");
        let mut secret = [0u8; 48];
        for (i, b) in secret.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(31) ^ last;
        }
        let stack = TcpStack::new(tcp, ChecksumCaps::SOFTWARE, secret, Instant::ZERO);
        Node {
            host: TcpHost::new(iface, dev, stack),
            events: Vec::new(),
        }
    }

    fn poll(&mut self, now: Instant) {
        self.host.poll(now);
        self.collect();
    }

    fn flush(&mut self, now: Instant) {
        self.host.flush(now);
        self.collect();
    }

    fn collect(&mut self) {
        while let Some(e) = self.host.poll_event() {
            self.events.push(e);
        }
    }

    fn poll_at(&self) -> Option<Instant> {
        self.host.poll_at()
    }

    fn closed(&self, id: ConnId) -> Option<CloseReason> {
        self.events.iter().find_map(|&(c, e)| match e {
            Event::Closed(r) if c == id => Some(r),
            _ => None,
        })
    }
}

/// Steps every node to the next wake-up until `done` or `limit` of virtual
/// time; returns the time reached.
fn run(
    nodes: &mut [&mut Node],
    now: &mut Instant,
    limit: Duration,
    mut done: impl FnMut(&mut [&mut Node], Instant) -> bool,
) -> bool {
    let end = *now + limit;
    for _ in 0..10_000_000 {
        for n in nodes.iter_mut() {
            n.poll(*now);
        }
        if done(nodes, *now) {
            return true;
        }
        // Send what the application calls just queued.
        for n in nodes.iter_mut() {
            n.flush(*now);
        }
        let next = nodes.iter().filter_map(|n| n.poll_at()).min();
        let next = match next {
            Some(t) if t > *now => t,
            // Something is due now (or was): go round again, a tick later at
            // most, so a lower-bound deadline cannot spin.
            Some(_) => *now + Duration::from_micros(1),
            None => *now + Duration::from_millis(1),
        };
        if next > end {
            return false;
        }
        *now = next;
    }
    false
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Client sends `data` on a new connection, server reads it all and echoes
/// it back, then both close. Returns (bytes the server read, bytes the
/// client read back).
fn echo_once(impairment: Impairment, data: &[u8], seed: u64) -> (Vec<u8>, Vec<u8>, Node, Node) {
    let wire = MemWire::new(seed);
    let mut server = Node::new(&wire, 1, TcpConfig::default(), impairment);
    let mut client = Node::new(&wire, 2, TcpConfig::default(), impairment);
    server
        .host
        .tcp
        .listen(PORT, ListenConfig::default())
        .expect("listen");
    let mut now = Instant::ZERO;
    let id = client
        .host
        .tcp
        .connect(now, ip(2), None, (ip(1), PORT))
        .expect("connect");
    let (mut sent, mut at_server, mut back) = (0usize, Vec::new(), Vec::new());
    let mut accepted: Option<ConnId> = None;
    let mut buf = vec![0u8; 65536];
    let ok = run(
        &mut [&mut server, &mut client],
        &mut now,
        Duration::from_secs(600),
        |nodes, now| {
            let (s, c) = nodes.split_at_mut(1);
            let (server, client) = (&mut *s[0], &mut *c[0]);
            let established = client
                .host
                .tcp
                .conn(id)
                .is_some_and(|c| c.state() == State::Established);
            if established && sent < data.len() {
                sent += client
                    .host
                    .tcp
                    .with_conn(now, id, |conn| {
                        conn.send_slice(&data[sent..], &mut DeviceAlloc(&mut client.host.lp.dev))
                    })
                    .unwrap_or(0);
                if sent == data.len() {
                    client
                        .host
                        .tcp
                        .with_conn(now, id, |conn| conn.shutdown(now));
                }
            }
            if accepted.is_none() {
                accepted = server.host.tcp.accept(PORT);
            }
            if let Some(a) = accepted {
                let n = server
                    .host
                    .tcp
                    .with_conn(now, a, |conn| conn.read(&mut buf))
                    .unwrap_or(0);
                at_server.extend_from_slice(&buf[..n]);
                // Echo what arrived since the last round.
                let mut off = at_server.len() - n;
                while off < at_server.len() {
                    let w = server
                        .host
                        .tcp
                        .with_conn(now, a, |conn| {
                            conn.send_slice(
                                &at_server[off..],
                                &mut DeviceAlloc(&mut server.host.lp.dev),
                            )
                        })
                        .unwrap_or(0);
                    if w == 0 {
                        break;
                    }
                    off += w;
                }
                assert_eq!(
                    off,
                    at_server.len(),
                    "server send buffer filled (test sizes its data to fit)"
                );
                if at_server.len() == data.len()
                    && server
                        .host
                        .tcp
                        .conn(a)
                        .is_some_and(|c| c.state() == State::CloseWait)
                {
                    server.host.tcp.with_conn(now, a, |conn| conn.close(now));
                }
            }
            let n = client
                .host
                .tcp
                .with_conn(now, id, |conn| conn.read(&mut buf))
                .unwrap_or(0);
            back.extend_from_slice(&buf[..n]);
            back.len() == data.len()
                && client.closed(id).is_some()
                && server.host.tcp.connections() == 0
        },
    );
    assert!(
        ok,
        "echo did not finish: sent {sent}, server read {}, client read back {}; accepted {:?}; client {:?} {:?} {:?}; server {:?}",
        at_server.len(),
        back.len(),
        accepted.and_then(|a| server.host.tcp.conn(a).map(|c| (c.state(), c.recv_queued(), *c.stats()))),
        client.host.tcp.conn(id).map(|c| (c.state(), c.send_queued())),
        client.events,
        client.host.tcp.stats(),
        server.host.tcp.stats()
    );
    (at_server, back, server, client)
}

#[test]
fn echo_with_orderly_close_on_a_clean_wire() {
    let data = pattern(100_000, 1);
    let (at_server, back, server, client) = echo_once(Impairment::NONE, &data, 1);
    assert!(at_server == data && back == data);
    let (id, _) = client.events[0];
    assert_eq!(client.closed(id), Some(CloseReason::Normal));
    assert_eq!(server.host.tcp.stats().passive_opens, 1);
    assert_eq!(client.host.tcp.stats().active_opens, 1);
    assert_eq!(
        server.host.tcp.stats().rst_sent + client.host.tcp.stats().rst_sent,
        0
    );
    // ARP resolved once each way, no drops anywhere.
    assert_eq!(server.host.lp.iface.stats().total_drops(), 0);
    assert_eq!(client.host.lp.iface.stats().total_drops(), 0);
}

#[test]
fn echo_survives_loss_reordering_and_duplication() {
    let imp = Impairment {
        loss: 0.03,
        reorder: 0.02,
        duplicate: 0.01,
        delay: Duration::from_micros(500),
        jitter: Duration::from_micros(50),
        ..Impairment::NONE
    };
    for seed in 1..=4 {
        let data = pattern(120_000, seed as u32);
        let (at_server, back, _, _) = echo_once(imp, &data, seed);
        assert!(at_server == data, "seed {seed}: server got wrong bytes");
        assert!(back == data, "seed {seed}: echo came back wrong");
    }
}

/// Streams `data` from `client` to `server` (listening on PORT) over a new
/// connection, the server reading as it arrives, for at most `limit` of
/// virtual time. Returns the bytes the server read and its connection.
fn stream(
    server: &mut Node,
    client: &mut Node,
    data: &[u8],
    limit: Duration,
) -> (usize, Option<ConnId>) {
    let mut now = Instant::ZERO;
    let id = client
        .host
        .tcp
        .connect(now, ip(2), None, (ip(1), PORT))
        .expect("connect");
    let (mut sent, mut got) = (0usize, 0usize);
    let mut accepted = None;
    let mut buf = vec![0u8; 65536];
    run(&mut [server, client], &mut now, limit, |nodes, now| {
        let (s, c) = nodes.split_at_mut(1);
        let (server, client) = (&mut *s[0], &mut *c[0]);
        let TcpHost { lp, tcp, .. } = &mut client.host;
        sent += tcp
            .with_conn(now, id, |conn| {
                conn.send_slice(&data[sent..], &mut DeviceAlloc(&mut lp.dev))
            })
            .unwrap_or(0);
        accepted = accepted.or_else(|| server.host.tcp.accept(PORT));
        if let Some(a) = accepted {
            got += server
                .host
                .tcp
                .with_conn(now, a, |conn| conn.read(&mut buf))
                .unwrap_or(0);
        }
        got == data.len()
    });
    (got, accepted)
}

/// Every received pure ACK goes back to the device's pool: a sender whose
/// pool is far smaller than the number of ACKs it receives keeps going
/// (each ACK's buffer used to be dropped uncounted, so the pool ran dry
/// after about `pool_limit` ACKs and the connection stalled for good).
#[test]
fn received_acks_return_their_buffers_to_the_pool() {
    let wire = MemWire::new(7);
    let mut server = Node::new(&wire, 1, TcpConfig::default(), Impairment::NONE);
    // A 32 KiB send buffer (about 20 pool buffers) bounds every flight, so
    // 16 MiB take hundreds of ACKs, more than the pool's 128 buffers.
    let small = TcpConfig {
        snd_buf: 32 * 1024,
        ..TcpConfig::default()
    };
    let mut client = Node::with_pool(&wire, 2, small, Impairment::NONE, 128);
    server
        .host
        .tcp
        .listen(PORT, ListenConfig::default())
        .expect("listen");
    let data = pattern(16 << 20, 9);
    let (got, _) = stream(&mut server, &mut client, &data, Duration::from_secs(120));
    let ok = got == data.len();
    let acks = client.host.tcp.stats().segments_in;
    assert!(
        ok,
        "stalled after {got} of {} bytes; the sender received {acks} segments: {:?}",
        data.len(),
        client.host.tcp.stats()
    );
    assert!(
        acks > 128,
        "the test needs more ACKs ({acks}) than pool buffers"
    );
}

#[test]
fn corrupted_frames_are_caught_by_checksums() {
    let imp = Impairment {
        corrupt: 0.05,
        ..Impairment::NONE
    };
    let data = pattern(60_000, 9);
    let (at_server, back, server, client) = echo_once(imp, &data, 3);
    assert!(at_server == data && back == data);
    let caught = server.host.tcp.stats().drop_bad_checksum
        + client.host.tcp.stats().drop_bad_checksum
        + server.host.lp.iface.stats().total_drops()
        + client.host.lp.iface.stats().total_drops();
    assert!(caught > 0, "5 % corruption produced no detected error");
}

#[test]
fn connect_to_a_closed_port_is_refused_with_rst() {
    let wire = MemWire::new(5);
    let mut server = Node::new(&wire, 1, TcpConfig::default(), Impairment::NONE);
    let mut client = Node::new(&wire, 2, TcpConfig::default(), Impairment::NONE);
    let mut now = Instant::ZERO;
    let id = client
        .host
        .tcp
        .connect(now, ip(2), Some(40000), (ip(1), 81))
        .expect("connect");
    let ok = run(
        &mut [&mut server, &mut client],
        &mut now,
        Duration::from_secs(5),
        |n, _| n[1].closed(id).is_some(),
    );
    assert!(ok);
    assert_eq!(client.closed(id), Some(CloseReason::Refused));
    assert_eq!(server.host.tcp.stats().rst_sent, 1);
    assert_eq!(server.host.tcp.connections(), 0);
    assert_eq!(client.host.tcp.connections(), 0);
}

#[test]
fn hundreds_of_concurrent_connections_find_their_own_state() {
    let wire = MemWire::new(7);
    let mut server = Node::new(&wire, 1, TcpConfig::default(), Impairment::NONE);
    let mut client = Node::new(&wire, 2, TcpConfig::default(), Impairment::NONE);
    server
        .host
        .tcp
        .listen(PORT, ListenConfig::default())
        .expect("listen");
    let mut now = Instant::ZERO;
    let ids: Vec<ConnId> = (0..300)
        .map(|_| {
            client
                .host
                .tcp
                .connect(now, ip(2), None, (ip(1), PORT))
                .expect("connect")
        })
        .collect();
    let mut sent = vec![false; ids.len()];
    let mut served: Vec<ConnId> = Vec::new();
    let mut got: std::collections::HashMap<Vec<u8>, usize> = std::collections::HashMap::new();
    let mut buf = [0u8; 64];
    let ok = run(
        &mut [&mut server, &mut client],
        &mut now,
        Duration::from_secs(60),
        |nodes, now| {
            let (s, c) = nodes.split_at_mut(1);
            let (server, client) = (&mut *s[0], &mut *c[0]);
            for (i, &id) in ids.iter().enumerate() {
                if !sent[i]
                    && client
                        .host
                        .tcp
                        .conn(id)
                        .is_some_and(|c| c.state() == State::Established)
                {
                    let msg = format!("conn {i:04}");
                    let n = client.host.tcp.with_conn(now, id, |conn| {
                        conn.send_slice(msg.as_bytes(), &mut DeviceAlloc(&mut client.host.lp.dev))
                    });
                    assert_eq!(n, Some(msg.len()));
                    client
                        .host
                        .tcp
                        .with_conn(now, id, |conn| conn.shutdown(now));
                    sent[i] = true;
                }
            }
            while let Some(a) = server.host.tcp.accept(PORT) {
                served.push(a);
            }
            for &a in &served {
                let n = server
                    .host
                    .tcp
                    .with_conn(now, a, |conn| conn.read(&mut buf))
                    .unwrap_or(0);
                if n > 0 {
                    *got.entry(buf[..n].to_vec()).or_default() += 1;
                    server.host.tcp.with_conn(now, a, |conn| conn.close(now));
                }
            }
            got.len() == ids.len()
        },
    );
    assert!(ok, "{} of {} messages arrived", got.len(), ids.len());
    assert!(got.values().all(|&n| n == 1));
    for i in 0..ids.len() {
        assert!(got.contains_key(format!("conn {i:04}").as_bytes()));
    }
    assert_eq!(server.host.tcp.stats().passive_opens, 300);
}

/// A SYN from `src` (a host that does not exist) to the server, as raw bytes.
fn spoofed_syn(src: Ipv4Addr, port: u16, dst_mac: EthernetAddress) -> Vec<u8> {
    let tcp = TcpRepr {
        src_port: port,
        dst_port: PORT,
        seq_number: TcpSeqNumber(1000),
        ack_number: None,
        flags: TcpFlags::SYN,
        window_len: 65535,
        max_seg_size: Some(1460),
        window_scale: None,
        sack_permitted: false,
        sack_ranges: [None; 4],
        timestamp: None,
        payload: &[],
    };
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: self::ip(1),
        protocol: IpProtocol::Tcp,
        payload_len: tcp.header_len(),
        ttl: 64,
        dscp_ecn: 0,
        ident: 1,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress([0x02, 0, 0x5e, 0, 9, 9]),
        dst_addr: dst_mac,
        ethertype: EtherType::Ipv4,
        vlan: None,
    };
    let mut f = vec![0u8; 14 + 20 + tcp.header_len()];
    eth.emit(&mut EthernetFrame::new_unchecked(&mut f[..14]));
    ip.emit(
        &mut Ipv4Packet::new_unchecked(&mut f[14..34]),
        &ChecksumCaps::SOFTWARE,
    );
    tcp.emit(
        &mut TcpPacket::new_unchecked(&mut f[34..]),
        src,
        self::ip(1),
        &ChecksumCaps::SOFTWARE,
    );
    f
}

#[test]
fn syn_flood_falls_back_to_cookies_and_a_real_client_still_connects() {
    let wire = MemWire::new(11);
    let mut server = Node::new(&wire, 1, TcpConfig::default(), Impairment::NONE);
    let mut client = Node::new(&wire, 2, TcpConfig::default(), Impairment::NONE);
    let mut flooder = wire
        .add_port(MemPortConfig::new(EthernetAddress([
            0x02, 0, 0x5e, 0, 9, 9,
        ])))
        .expect("port")
        .pop()
        .expect("queue");
    server
        .host
        .tcp
        .listen(
            PORT,
            ListenConfig {
                backlog: 16,
                syn_backlog: 8,
                syn_cookies: true,
            },
        )
        .expect("listen");
    let mut now = Instant::ZERO;
    // 200 SYNs from addresses that never answer: 8 fill the SYN backlog,
    // the rest get cookies and leave no state.
    for i in 0..200u16 {
        let f = spoofed_syn(
            Ipv4Addr::new(198, 18, 0, 100 + (i % 100) as u8),
            10_000 + i,
            mac(1),
        );
        let mut b = flooder.alloc_tx().expect("buffer");
        b.append(f.len()).expect("room").copy_from_slice(&f);
        let mut v = vec![b];
        flooder.tx_burst(now, &mut v);
    }
    server.poll(now);
    assert_eq!(
        server.host.tcp.connections(),
        8,
        "only the SYN backlog holds state"
    );
    assert_eq!(server.host.tcp.stats().cookies_sent, 192);

    let id = client
        .host
        .tcp
        .connect(now, ip(2), None, (ip(1), PORT))
        .expect("connect");
    let mut accepted = None;
    let msg = b"through the flood";
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    let ok = run(
        &mut [&mut server, &mut client],
        &mut now,
        Duration::from_secs(10),
        |nodes, now| {
            let (s, c) = nodes.split_at_mut(1);
            let (server, client) = (&mut *s[0], &mut *c[0]);
            if client
                .host
                .tcp
                .conn(id)
                .is_some_and(|c| c.state() == State::Established)
                && got.is_empty()
                && accepted.is_none()
            {
                client.host.tcp.with_conn(now, id, |conn| {
                    conn.send_slice(msg, &mut DeviceAlloc(&mut client.host.lp.dev))
                });
            }
            if accepted.is_none() {
                accepted = server.host.tcp.accept(PORT);
            }
            if let Some(a) = accepted {
                let n = server
                    .host
                    .tcp
                    .with_conn(now, a, |conn| conn.read(&mut buf))
                    .unwrap_or(0);
                got.extend_from_slice(&buf[..n]);
            }
            got == msg
        },
    );
    assert!(ok, "the legitimate client never got through");
    let st = server.host.tcp.stats();
    assert_eq!(st.cookies_accepted, 1, "{st:?}");
    assert!(st.cookies_sent >= 193);
    let a = accepted.expect("accepted");
    assert_eq!(
        server.host.tcp.conn(a).map(|c| c.state()),
        Some(State::Established)
    );
    // The server answers through the cookie connection: its timestamps
    // continue the clock of the cookie SYN-ACK, so the client's PAWS check
    // (RFC 7323 §5) accepts every segment.
    let reply = pattern(200_000, 5);
    let (mut sent, mut back) = (0usize, Vec::new());
    let mut buf = vec![0u8; 65536];
    let ok = run(
        &mut [&mut server, &mut client],
        &mut now,
        Duration::from_secs(30),
        |nodes, now| {
            let (s, c) = nodes.split_at_mut(1);
            let (server, client) = (&mut *s[0], &mut *c[0]);
            if sent < reply.len() {
                sent += server
                    .host
                    .tcp
                    .with_conn(now, a, |conn| {
                        conn.send_slice(&reply[sent..], &mut DeviceAlloc(&mut server.host.lp.dev))
                    })
                    .unwrap_or(0);
            }
            let n = client
                .host
                .tcp
                .with_conn(now, id, |conn| conn.read(&mut buf))
                .unwrap_or(0);
            back.extend_from_slice(&buf[..n]);
            back.len() == reply.len()
        },
    );
    assert!(
        ok,
        "reply stalled at {} of {} bytes",
        back.len(),
        reply.len()
    );
    assert!(back == reply);
    let paws = client.host.tcp.conn(id).map(|c| c.stats().paws_drops);
    assert_eq!(paws, Some(0));
}

#[test]
fn time_wait_gives_way_to_a_newer_syn_when_reuse_is_on() {
    let wire = MemWire::new(13);
    let server_cfg = TcpConfig {
        time_wait_reuse: true,
        ..TcpConfig::default()
    };
    let mut server = Node::new(&wire, 1, server_cfg, Impairment::NONE);
    let mut client = Node::new(&wire, 2, TcpConfig::default(), Impairment::NONE);
    server
        .host
        .tcp
        .listen(PORT, ListenConfig::default())
        .expect("listen");
    let mut now = Instant::ZERO;
    let first = client
        .host
        .tcp
        .connect(now, ip(2), Some(45000), (ip(1), PORT))
        .expect("connect");
    let mut a = None;
    // The server closes first, so the server's side holds TIME-WAIT.
    let ok = run(
        &mut [&mut server, &mut client],
        &mut now,
        Duration::from_secs(10),
        |nodes, now| {
            let (s, c) = nodes.split_at_mut(1);
            let (server, client) = (&mut *s[0], &mut *c[0]);
            if a.is_none() {
                a = server.host.tcp.accept(PORT);
                if let Some(id) = a {
                    server.host.tcp.with_conn(now, id, |conn| conn.close(now));
                }
            }
            if client
                .host
                .tcp
                .conn(first)
                .is_some_and(|c| c.state() == State::CloseWait)
            {
                client
                    .host
                    .tcp
                    .with_conn(now, first, |conn| conn.close(now));
            }
            a.is_some_and(|id| {
                server
                    .host
                    .tcp
                    .conn(id)
                    .is_some_and(|c| c.state() == State::TimeWait)
            }) && client.closed(first).is_some()
        },
    );
    assert!(
        ok,
        "server never reached TIME-WAIT: server {:?}, client {:?} {:?}",
        a.and_then(|id| server.host.tcp.conn(id).map(|c| c.state())),
        client.host.tcp.conn(first).map(|c| c.state()),
        client.events
    );
    // Same 4-tuple again, well inside 2·MSL.
    now += Duration::from_secs(1);
    let second = client
        .host
        .tcp
        .connect(now, ip(2), Some(45000), (ip(1), PORT))
        .expect("reconnect");
    let ok = run(
        &mut [&mut server, &mut client],
        &mut now,
        Duration::from_secs(10),
        |nodes, _| {
            nodes[1]
                .host
                .tcp
                .conn(second)
                .is_some_and(|c| c.state() == State::Established)
        },
    );
    assert!(ok, "the new connection did not replace TIME-WAIT");
    assert_eq!(server.host.tcp.stats().time_wait_reused, 1);
}

/// A fixed pool of 128 buffers survives thousands of duplicate segments:
/// every refused segment's buffer goes back to it (through the stack, and
/// through `Connection::poll_recycle` for drivers that feed connections
/// directly).
#[test]
fn duplicate_segments_return_their_buffers_to_the_pool() {
    let wire = MemWire::new(17);
    // Every frame to the server arrives twice: half of what it receives is
    // duplicate data, far more than its 128 buffers.
    let twice = Impairment {
        duplicate: 1.0,
        ..Impairment::NONE
    };
    let mut server = Node::with_pool(&wire, 1, TcpConfig::default(), Impairment::NONE, 128);
    let mut client = Node::new(&wire, 2, TcpConfig::default(), twice);
    server
        .host
        .tcp
        .listen(PORT, ListenConfig::default())
        .expect("listen");
    let data = pattern(4 << 20, 3);
    let (got, accepted) = stream(&mut server, &mut client, &data, Duration::from_secs(120));
    let ok = got == data.len();
    let stats = accepted.and_then(|a| server.host.tcp.conn(a).map(|c| *c.stats()));
    let refused = stats.map_or(0, |s| s.duplicate_segments + s.dropped + s.out_of_window);
    assert!(ok, "stalled after {got} of {} bytes: {stats:?}", data.len());
    assert!(
        refused > 128,
        "the test needs more refused segments ({refused}) than pool buffers: {stats:?}"
    );
}
