//! One TCP transfer between two hosts on the in-memory wire, in virtual
//! time: the harness under the simulation matrix (`tcp_sim_matrix.rs`).
//!
//! Two [`TcpHost`]s (client 198.18.0.2, server 198.18.0.1) share a
//! [`MemWire`] seeded per run; both ports' egress carry the same
//! [`Impairment`]. The client connects, the sending side writes `size`
//! bytes of a seeded stream and shuts down, the receiving side reads and
//! hashes everything, then closes once it has seen the FIN. The run records
//! when the first and the last byte reached the receiving application and
//! when the FIN did, and then goes on until both connections are closed in
//! order (the active closer may sit in TIME-WAIT).
//!
//! Everything is a function of (spec, seed): the wire's impairment PRNGs,
//! the payload and the event order, so a failing (cell, seed) replays
//! exactly.

use std::net::Ipv4Addr;

use wirespeed::buf::PacketBuf;
use wirespeed::net::arp::ArpConfig;
use wirespeed::net::{Interface, InterfaceConfig};
use wirespeed::port::mem::{Impairment, MemDevice, MemPortConfig, MemWire};
use wirespeed::port::Device;
use wirespeed::rt::TcpHost;
use wirespeed::tcp::{CloseReason, ConnId, ConnStats, Event, ListenConfig, State, TcpConfig};
use wirespeed::tcp::{StackStats, TcpStack};
use wirespeed::wire::{
    ArpOperation, ArpPacket, ArpRepr, ChecksumCaps, EtherType, EthernetAddress, EthernetFrame,
    EthernetRepr,
};
use wirespeed::{Duration, Instant};

pub const PORT: u16 = 5001;

/// Which way the data flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Client (active opener) to server.
    Up,
    /// Server (passive opener) to client.
    Down,
}

/// One transfer to run.
#[derive(Clone, Copy, Debug)]
pub struct TransferSpec {
    /// Applied to both ports' egress (so to both directions).
    pub impairment: Impairment,
    /// Payload bytes.
    pub size: usize,
    pub dir: Dir,
    /// TCP configuration of both hosts.
    pub tcp: TcpConfig,
    /// Give up (and report a stall) at this virtual time.
    pub limit: Duration,
    /// Print every frame sent (before impairment) to stderr.
    pub trace: bool,
}

/// What happened.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub seed: u64,
    /// Bytes the receiving application read.
    pub received: usize,
    /// FNV-1a 64 of what the sender queued and of what the receiver read.
    pub sent_hash: u64,
    pub recv_hash: u64,
    /// The receiver saw the peer's FIN (after all the data).
    pub fin_seen: bool,
    /// Virtual time the receiving application got the first and the last
    /// byte, and the FIN.
    pub first_byte: Option<Instant>,
    pub last_byte: Option<Instant>,
    pub fin_at: Option<Instant>,
    /// The handshake completed on the client.
    pub connected_at: Option<Instant>,
    /// Both sides closed in order (sender in TIME-WAIT or closed normally,
    /// receiver closed normally) and when.
    pub closed_at: Option<Instant>,
    /// How the sender and the receiver connections ended, when they did.
    pub sender_close: Option<CloseReason>,
    pub receiver_close: Option<CloseReason>,
    /// Where the connections stood when the run ended.
    pub sender_state: Option<State>,
    pub receiver_state: Option<State>,
    pub sender_stats: Option<ConnStats>,
    pub receiver_stats: Option<ConnStats>,
    pub sender_send_queued: usize,
    pub receiver_recv_queued: usize,
    pub client_stack: StackStats,
    pub server_stack: StackStats,
    /// Virtual time when the run stopped.
    pub end: Instant,
    /// Loop iterations (a cost measure).
    pub steps: u64,
}

impl Outcome {
    pub fn intact(&self, size: usize) -> bool {
        self.received == size && self.recv_hash == self.sent_hash
    }

    /// Virtual time from the connect call to the FIN at the receiver.
    pub fn completion(&self) -> Option<Duration> {
        self.fin_at.map(|t| t - Instant::ZERO)
    }

    /// Payload bytes per second between the first and the last byte at the
    /// receiver (`None` for transfers too short to time).
    pub fn goodput_bps(&self, size: usize) -> Option<f64> {
        let (a, b) = (self.first_byte?, self.last_byte?);
        let dt = (b - a).as_secs_f64();
        (dt > 0.0).then(|| size as f64 * 8.0 / dt)
    }

    /// A one-paragraph account for failure messages.
    pub fn describe(&self, size: usize) -> String {
        format!(
            "seed {}: received {}/{} bytes (hash {:#018x} vs sent {:#018x}), fin {}, \
             first {:?}, last {:?}, fin at {:?}, connected {:?}, closed {:?}, end {:?}, steps {}; \
             sender {:?} close {:?} send_queued {}; receiver {:?} close {:?} recv_queued {}; \
             sender stats {:?}; receiver stats {:?}; client stack {:?}; server stack {:?}",
            self.seed,
            self.received,
            size,
            self.recv_hash,
            self.sent_hash,
            self.fin_seen,
            self.first_byte,
            self.last_byte,
            self.fin_at,
            self.connected_at,
            self.closed_at,
            self.end,
            self.steps,
            self.sender_state,
            self.sender_close,
            self.sender_send_queued,
            self.receiver_state,
            self.receiver_close,
            self.receiver_recv_queued,
            self.sender_stats,
            self.receiver_stats,
            self.client_stack,
            self.server_stack,
        )
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
    }
    h
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fills `out` with the seeded stream from byte offset `off`.
fn fill(key: u64, off: usize, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        let pos = off + i;
        let word = splitmix(key ^ (pos as u64 >> 3).wrapping_mul(0x2545_f491_4f6c_dd1d));
        *b = (word >> ((pos & 7) * 8)) as u8;
    }
}

fn mac(last: u8) -> EthernetAddress {
    EthernetAddress([0x02, 0, 0x5e, 0, 1, last])
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, last)
}

/// One host and what its application has learnt about one connection.
struct Node {
    host: TcpHost<MemDevice>,
    conn: Option<ConnId>,
    early: Vec<(ConnId, Event)>,
    connected_at: Option<Instant>,
    peer_fin: bool,
    closed: Option<CloseReason>,
}

impl Node {
    fn new(wire: &MemWire, last: u8, tcp: TcpConfig, impairment: Impairment) -> Node {
        let dev = wire
            .add_port(MemPortConfig {
                impairment,
                pool_limit: 1 << 16,
                rx_queue_limit: 1 << 16,
                ..MemPortConfig::new(mac(last))
            })
            .expect("port")
            .pop()
            .expect("one queue");
        let cidr = format!("198.18.0.{last}/24").parse().expect("cidr");
        let mut cfg = InterfaceConfig::new(mac(last), cidr);
        // Neighbours are taught out of band (see `teach_neighbours`) and
        // stay valid for the whole run: no ARP crosses the impaired wire.
        cfg.announce = false;
        cfg.arp = ArpConfig {
            reachable_time: Duration::from_secs(10_000_000),
            ..ArpConfig::default()
        };
        let iface = Interface::new(cfg, Instant::ZERO).expect("iface");
        let mut secret = [0u8; 48];
        for (i, b) in secret.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(29) ^ last;
        }
        let stack = TcpStack::new(tcp, ChecksumCaps::SOFTWARE, secret, Instant::ZERO);
        Node {
            host: TcpHost::new(iface, dev, stack),
            conn: None,
            early: Vec::new(),
            connected_at: None,
            peer_fin: false,
            closed: None,
        }
    }

    /// Takes the host's events; those of a connection not yet accepted wait
    /// in `early` until [`Node::adopt`].
    fn collect(&mut self, now: Instant) {
        while let Some((id, e)) = self.host.poll_event() {
            match self.conn {
                Some(c) if c == id => self.note(now, e),
                Some(_) => {}
                None => self.early.push((id, e)),
            }
        }
    }

    /// Our connection is `id` (accepted): its earlier events count now.
    fn adopt(&mut self, now: Instant, id: ConnId) {
        self.conn = Some(id);
        for (c, e) in std::mem::take(&mut self.early) {
            if c == id {
                self.note(now, e);
            }
        }
    }

    fn note(&mut self, now: Instant, e: Event) {
        match e {
            Event::Connected => self.connected_at = Some(now),
            Event::PeerFin => self.peer_fin = true,
            Event::Closed(r) => self.closed = Some(r),
            Event::Readable | Event::Writable => {}
        }
    }

    fn state(&self) -> Option<State> {
        self.conn
            .and_then(|id| self.host.tcp.conn(id).map(|c| c.state()))
    }
}

/// Sends each host an ARP reply for every other host from a port without
/// impairment, delivered at time zero. ARP has no checksum: a reply with a
/// flipped bit would poison a neighbour cache for its reachable time (the
/// interface's concern, covered in `sim_net.rs`), and ARP retries give up
/// under heavy loss; the matrix is about TCP, so ARP stays off the impaired
/// wire.
fn teach_neighbours(wire: &MemWire, hosts: &[(EthernetAddress, Ipv4Addr)]) {
    let injector = EthernetAddress([0x02, 0, 0x5e, 0, 1, 0xfe]);
    let mut dev = wire
        .add_port(MemPortConfig::new(injector))
        .expect("injector port")
        .pop()
        .expect("one queue");
    for &(to_mac, to_ip) in hosts {
        for &(mac, ip) in hosts.iter().filter(|h| h.0 != to_mac) {
            let arp = ArpRepr {
                operation: ArpOperation::Reply,
                source_hardware_addr: mac,
                source_protocol_addr: ip,
                target_hardware_addr: to_mac,
                target_protocol_addr: to_ip,
            };
            let eth = EthernetRepr {
                src_addr: injector,
                dst_addr: to_mac,
                ethertype: EtherType::Arp,
                vlan: None,
            };
            let mut f = vec![0u8; 14 + arp.buffer_len()];
            eth.emit(&mut EthernetFrame::new_unchecked(&mut f[..14]));
            arp.emit(&mut ArpPacket::new_unchecked(&mut f[14..]));
            let mut b = dev.alloc_tx().expect("buffer");
            b.append(f.len()).expect("room").copy_from_slice(&f);
            dev.tx_burst(Instant::ZERO, &mut vec![b]);
        }
    }
}

/// Runs one transfer for `seed`.
pub fn run_transfer(spec: &TransferSpec, seed: u64) -> Outcome {
    let wire = MemWire::new(seed);
    if spec.trace {
        wire.set_filter(Some(Box::new(|f: &[u8]| {
            eprintln!("{}", describe_frame(f));
            false
        })));
    }
    let mut server = Node::new(&wire, 1, spec.tcp, spec.impairment);
    let mut client = Node::new(&wire, 2, spec.tcp, spec.impairment);
    server
        .host
        .listen(PORT, ListenConfig::default())
        .expect("listen");
    teach_neighbours(&wire, &[(mac(1), ip(1)), (mac(2), ip(2))]);
    let mut now = Instant::ZERO;
    client.conn = Some(
        client
            .host
            .connect(now, (ip(1), PORT), None)
            .expect("connect"),
    );
    let key = splitmix(seed ^ 0x005e_ed0f_da7a);
    let size = spec.size;
    let (mut sent, mut sent_hash, mut shut) = (0usize, FNV_OFFSET, false);
    let (mut received, mut recv_hash) = (0usize, FNV_OFFSET);
    let (mut first_byte, mut last_byte, mut fin_at, mut closed_at) = (None, None, None, None);
    let mut receiver_closed_call = false;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut rbuf = vec![0u8; 256 * 1024];
    let end = now + spec.limit;
    let mut steps = 0u64;
    let snd_buf = spec.tcp.snd_buf as usize;
    let (mut tx_stats, mut rx_stats) = (None, None);
    loop {
        steps += 1;
        server.host.poll(now);
        server.collect(now);
        client.host.poll(now);
        client.collect(now);
        if server.conn.is_none() {
            if let Some(id) = server.host.tcp.accept(PORT) {
                server.adopt(now, id);
            }
        }
        let (tx, rx) = match spec.dir {
            Dir::Up => (&mut client, &mut server),
            Dir::Down => (&mut server, &mut client),
        };
        // Sender: keep the send buffer full, then shut down.
        if let Some(id) = tx.conn {
            let open = tx
                .host
                .tcp
                .conn(id)
                .is_some_and(|c| matches!(c.state(), State::Established | State::CloseWait));
            if open && !shut {
                while sent < size {
                    let queued = tx.host.tcp.conn(id).map_or(0, |c| c.send_queued());
                    let room = snd_buf.saturating_sub(queued).min(size - sent);
                    let room = room.min(chunk.len());
                    if room == 0 {
                        break;
                    }
                    fill(key, sent, &mut chunk[..room]);
                    let n = tx
                        .host
                        .with_conn(now, id, |c, alloc| c.send_slice(&chunk[..room], alloc))
                        .unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    sent_hash = fnv(sent_hash, &chunk[..n]);
                    sent += n;
                }
                if sent == size {
                    tx.host.with_conn(now, id, |c, _| c.shutdown(now));
                    shut = true;
                }
            }
        }
        // Receiver: read everything, close after the FIN.
        if let Some(id) = rx.conn {
            loop {
                let n = rx
                    .host
                    .with_conn(now, id, |c, _| c.read(&mut rbuf))
                    .unwrap_or(0);
                if n == 0 {
                    break;
                }
                recv_hash = fnv(recv_hash, &rbuf[..n]);
                received += n;
                first_byte.get_or_insert(now);
                if received >= size {
                    last_byte.get_or_insert(now);
                }
            }
            // Collect the events the reads raised.
            rx.host.flush(now);
            rx.collect(now);
            if rx.peer_fin
                && fin_at.is_none()
                && rx.host.tcp.conn(id).is_some_and(|c| c.recv_queued() == 0)
            {
                fin_at = Some(now);
            }
            if fin_at.is_some() && !receiver_closed_call {
                rx.host.with_conn(now, id, |c, _| c.close(now));
                receiver_closed_call = true;
            }
        }
        tx.host.flush(now);
        tx.collect(now);
        rx.host.flush(now);
        rx.collect(now);
        // The stack drops a connection once closed: keep its last counters.
        if let Some(c) = tx.conn.and_then(|id| tx.host.tcp.conn(id)) {
            tx_stats = Some(*c.stats());
        }
        if let Some(c) = rx.conn.and_then(|id| rx.host.tcp.conn(id)) {
            rx_stats = Some(*c.stats());
        }
        let sender_done =
            tx.closed == Some(CloseReason::Normal) || tx.state() == Some(State::TimeWait);
        let receiver_done = rx.closed == Some(CloseReason::Normal);
        if sender_done && receiver_done && fin_at.is_some() {
            closed_at = Some(now);
            break;
        }
        // Either side gone abnormally: nothing more will happen.
        let abnormal = |n: &Node| n.closed.is_some_and(|r| r != CloseReason::Normal);
        if abnormal(tx) || abnormal(rx) {
            break;
        }
        let next = [server.host.poll_at(), client.host.poll_at()]
            .into_iter()
            .flatten()
            .min();
        let next = match next {
            Some(t) if t > now => t,
            // Due now (or a lower-bound deadline): a microsecond later, so
            // nothing spins.
            Some(_) => now + Duration::from_micros(1),
            None => break,
        };
        if next > end {
            break;
        }
        now = next;
    }
    let (tx, rx) = match spec.dir {
        Dir::Up => (&client, &server),
        Dir::Down => (&server, &client),
    };
    fn conn(n: &Node) -> Option<&wirespeed::tcp::Connection<wirespeed::buf::HeapBuf>> {
        n.conn.and_then(|id| n.host.tcp.conn(id))
    }
    Outcome {
        seed,
        received,
        sent_hash,
        recv_hash,
        fin_seen: rx.peer_fin,
        first_byte,
        last_byte,
        fin_at,
        connected_at: client.connected_at,
        closed_at,
        sender_close: tx.closed,
        receiver_close: rx.closed,
        sender_state: tx.state(),
        receiver_state: rx.state(),
        sender_stats: tx_stats,
        receiver_stats: rx_stats,
        sender_send_queued: conn(tx).map_or(0, |c| c.send_queued()),
        receiver_recv_queued: conn(rx).map_or(0, |c| c.recv_queued()),
        client_stack: *client.host.tcp.stats(),
        server_stack: *server.host.tcp.stats(),
        end: now,
        steps,
    }
}

/// One line about a frame: TCP ports, flags, sequence and acknowledgment
/// numbers, window, payload length, options; or its EtherType.
pub fn describe_frame(f: &[u8]) -> String {
    use wirespeed::wire::{TcpPacket, TcpRepr};
    if f.len() < 34 || f[12..14] != [0x08, 0x00] {
        return format!("non-IPv4 frame, {} bytes", f.len());
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let src = Ipv4Addr::new(f[26], f[27], f[28], f[29]);
    let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
    let Some(t) = f.get(14 + ihl..) else {
        return "short IPv4".to_string();
    };
    match TcpPacket::new_checked(t) {
        Ok(p) => match TcpRepr::parse(
            &p,
            src,
            dst,
            &ChecksumCaps {
                tcp: wirespeed::wire::Checksum::None,
                ..ChecksumCaps::SOFTWARE
            },
        ) {
            Ok(r) => format!(
                "{}:{} > {}:{} {:?} seq {} ack {:?} win {} len {} ts {:?} sack {:?}",
                src,
                r.src_port,
                dst,
                r.dst_port,
                r.flags,
                r.seq_number.0,
                r.ack_number.map(|a| a.0),
                r.window_len,
                r.payload.len(),
                r.timestamp,
                r.sack_ranges
            ),
            Err(e) => format!("bad TCP {e:?}"),
        },
        Err(e) => format!("bad TCP {e:?}"),
    }
}
