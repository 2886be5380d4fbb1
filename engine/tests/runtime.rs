//! The per-core runtime end to end: workers on threads over the threaded
//! in-memory link, inline handlers, RSS-aware active open across queues,
//! wrong-queue steering, and a deterministic single-thread run over the
//! simulated wire.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use wirespeed::api::{Context, Handler};
use wirespeed::buf::PacketBuf;
use wirespeed::net::{Interface, InterfaceConfig, Ipv4Cidr};
use wirespeed::port::link::{link_pair, LinkPortConfig};
use wirespeed::port::mem::{MemPortConfig, MemWire};
use wirespeed::port::Device;
use wirespeed::rt::{
    cross_core_mesh, CrossCore, Runtime, WorkerConfig, WorkerResult, WorkerSetup, WorkerSnapshot,
};
use wirespeed::tcp::{CloseReason, ConnId, ListenConfig, TcpConfig, TcpStack};
use wirespeed::time::{Duration, Instant};
use wirespeed::wire::EthernetAddress;

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

fn mac(n: u8) -> EthernetAddress {
    EthernetAddress([2, 0, 0, 0, 0, n])
}

/// Echoes every byte back, zero copy: the received view is sent as is.
#[derive(Default)]
struct EchoServer {
    accepted: u64,
    closed: u64,
    /// Payload copies made on this worker's thread (copy-on-write of a
    /// shared buffer), read when connections close.
    copies: u64,
}

impl<D: Device> Handler<D> for EchoServer {
    fn on_start(&mut self, cx: &mut Context<'_, D>) {
        cx.listen(7, ListenConfig::default()).unwrap();
    }
    fn on_accepted(&mut self, _cx: &mut Context<'_, D>, _id: ConnId, port: u16) {
        assert_eq!(port, 7);
        self.accepted += 1;
    }
    fn on_readable(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        while let Some(buf) = cx.recv(id) {
            if let Err(back) = cx.send(id, buf) {
                // Send buffer full: the client waits for each echo, so
                // this does not happen here; release rather than leak.
                cx.release(back);
                panic!("echo send refused");
            }
        }
    }
    fn on_peer_fin(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        cx.close(id);
    }
    fn on_closed(&mut self, _cx: &mut Context<'_, D>, _id: ConnId, _r: CloseReason) {
        self.closed += 1;
        self.copies = wirespeed::buf::cow_copies();
    }
}

struct ClientConn {
    sent: usize,
    got: usize,
    expect: Vec<u8>,
}

/// Opens `conns` connections; each sends `msgs` messages of `size` bytes
/// (a pattern unique to the connection), checks each echo, then closes.
struct EchoClient {
    conns: usize,
    msgs: usize,
    size: usize,
    open: HashMap<ConnId, ClientConn>,
    connected: usize,
    done: usize,
    failed: Vec<CloseReason>,
    mismatches: usize,
    opened: usize,
    copies: u64,
}

impl EchoClient {
    fn new(conns: usize, msgs: usize, size: usize) -> Self {
        EchoClient {
            conns,
            msgs,
            size,
            open: HashMap::new(),
            connected: 0,
            done: 0,
            failed: Vec::new(),
            mismatches: 0,
            opened: 0,
            copies: 0,
        }
    }

    fn message(&self, id: ConnId, n: usize) -> Vec<u8> {
        let seed = (format!("{id:?}").len() + n) as u8;
        (0..self.size).map(|i| seed.wrapping_add(i as u8)).collect()
    }

    fn send_next<D: Device>(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        let msg = self.message(id, self.open[&id].sent);
        let c = self.open.get_mut(&id).unwrap();
        assert_eq!(cx.send_slice(id, &msg), msg.len());
        c.sent += 1;
        c.expect = msg;
        c.got = 0;
    }
}

impl<D: Device> Handler<D> for EchoClient {
    fn on_start(&mut self, cx: &mut Context<'_, D>) {
        for _ in 0..self.conns {
            let id = cx.connect((SERVER, 7)).expect("connect");
            self.opened += 1;
            self.open.insert(
                id,
                ClientConn {
                    sent: 0,
                    got: 0,
                    expect: Vec::new(),
                },
            );
        }
    }
    fn on_connected(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        self.connected += 1;
        self.send_next(cx, id);
    }
    fn on_readable(&mut self, cx: &mut Context<'_, D>, id: ConnId) {
        while let Some(buf) = cx.recv(id) {
            let c = self.open.get_mut(&id).unwrap();
            let end = c.got + buf.len();
            if c.expect.get(c.got..end) != Some(buf.as_slice()) {
                self.mismatches += 1;
            }
            c.got = end;
            cx.release(buf);
        }
        let c = &self.open[&id];
        if c.got == self.size {
            if c.sent == self.msgs {
                cx.close(id);
            } else {
                self.send_next(cx, id);
            }
        }
    }
    fn on_closed(&mut self, _cx: &mut Context<'_, D>, id: ConnId, reason: CloseReason) {
        self.copies = wirespeed::buf::cow_copies();
        let c = self.open.remove(&id).unwrap();
        if reason == CloseReason::Normal && c.sent == self.msgs && c.got == self.size {
            self.done += 1;
        } else {
            self.failed.push(reason);
        }
    }
    fn is_done(&self) -> bool {
        self.opened == self.conns && self.open.is_empty()
    }
}

fn tcp_config() -> TcpConfig {
    TcpConfig {
        // Replies come back fast on the link; keep TIME-WAIT short so the
        // test does not linger on it.
        msl: Duration::from_millis(50),
        ..TcpConfig::default()
    }
}

fn iface(mac: EthernetAddress, addr: Ipv4Addr) -> InterfaceConfig {
    InterfaceConfig::new(mac, Ipv4Cidr::new(addr, 24).unwrap())
}

/// Runs an echo test: `cq` client queues, `sq` server queues.
fn echo_over_link(
    cq: u16,
    sq: u16,
    conns: usize,
    wrong_table: bool,
) -> (Vec<WorkerResult<EchoClient>>, Vec<WorkerResult<EchoServer>>) {
    let mut a = LinkPortConfig::new(mac(1), cq);
    if wrong_table {
        // The link hashes replies with a table shifted by one queue from
        // the one the client workers were told about.
        a.actual_reta = Some(a.reta.iter().map(|q| (q + 1) % cq).collect());
    }
    let b = LinkPortConfig::new(mac(2), sq);
    let (client_q, server_q) = link_pair(&a, &b).unwrap();
    let deadline = Instant::now_monotonic() + Duration::from_secs(20);
    let server = Runtime::start(server_q, &[], Some(deadline), |_, caps| {
        Ok(WorkerSetup {
            iface: iface(caps.mac, SERVER),
            tcp: tcp_config(),
            worker: WorkerConfig::default(),
            handler: EchoServer::default(),
        })
    })
    .unwrap();
    let client = Runtime::start(client_q, &[], Some(deadline), move |_, caps| {
        Ok(WorkerSetup {
            iface: iface(caps.mac, CLIENT),
            tcp: tcp_config(),
            worker: WorkerConfig::default(),
            handler: EchoClient::new(conns, 5, 300),
        })
    })
    .unwrap();
    let clients: Vec<_> = client.join().into_iter().map(Result::unwrap).collect();
    server.stop();
    let servers: Vec<_> = server.join().into_iter().map(Result::unwrap).collect();
    (clients, servers)
}

fn check_clients(clients: &[WorkerResult<EchoClient>], conns: usize) {
    for c in clients {
        eprintln!(
            "worker {:?}: done {} steered out {} in {} forwarded out {} in {} states {:?}",
            c.stats.worker,
            c.handler.done,
            c.stats.run.steered_out,
            c.stats.run.steered_in,
            c.stats.run.forwarded_out,
            c.stats.run.forwarded_in,
            c.stats.states
        );
    }
    for (i, c) in clients.iter().enumerate() {
        let h = &c.handler;
        assert!(h.failed.is_empty(), "worker {i}: failed {:?}", h.failed);
        assert_eq!(
            h.done,
            conns,
            "worker {i}: {} done of {conns}; counters {}",
            h.done,
            c.stats.to_json()
        );
        assert_eq!(h.mismatches, 0, "worker {i}: echo data differed");
    }
}

#[test]
fn echo_one_queue_each_side() {
    let (clients, servers) = echo_over_link(1, 1, 50, false);
    check_clients(&clients, 50);
    assert_eq!(servers[0].handler.accepted, 50);
    // Zero copy on the receive path: payloads reached both handlers as
    // views of the port's buffers, and the server sent them back as they
    // were; no buffer was ever copied on write.
    assert_eq!(servers[0].handler.copies, 0);
    assert_eq!(clients[0].handler.copies, 0);
    let c = &clients[0].stats;
    assert_eq!(c.tcp.active_opens, 50);
    assert_eq!(c.run.steered_out + c.run.steered_in, 0);
    let j = c.to_json();
    assert!(j.contains("\"active_opens\":50"), "{j}");
}

/// Four client workers, two server workers: every worker's replies come
/// back to its own queue (RSS-aware source ports), so nothing is steered.
#[test]
fn replies_reach_the_opening_worker() {
    let (clients, servers) = echo_over_link(4, 2, 100, false);
    check_clients(&clients, 100);
    let total = WorkerSnapshot::total(clients.iter().map(|c| &c.stats));
    assert_eq!(total.tcp.active_opens, 400);
    assert_eq!(total.run.steered_out, 0, "a reply reached the wrong worker");
    assert_eq!(total.tcp.rst_sent, 0);
    // ARP replies land on queue 0 and are shared with the other workers.
    assert!(total.run.forwarded_out > 0);
    let served: u64 = servers.iter().map(|s| s.handler.accepted).sum();
    assert_eq!(served, 400);
    // Both server queues got connections (the client spreads by RSS).
    assert!(servers.iter().all(|s| s.handler.accepted > 0));
}

/// The link hashes with another table than the one it reports: replies
/// land on the wrong worker, which passes them over the cross-core rings;
/// every connection still completes.
#[test]
fn wrong_queue_segments_are_steered_to_the_owner() {
    let (clients, _servers) = echo_over_link(3, 1, 60, true);
    check_clients(&clients, 60);
    let total = WorkerSnapshot::total(clients.iter().map(|c| &c.stats));
    assert!(total.run.steered_out > 0);
    assert_eq!(total.run.steered_out, total.run.steered_in);
    assert_eq!(total.run.forward_ring_full, 0);
}

/// Two workers on the deterministic wire, one thread, virtual clock.
#[test]
fn workers_on_the_simulated_wire() {
    sim_echo(WorkerConfig::default(), tcp_config());
}

/// The same with the throughput preset (TX batching holds frames for a
/// fuller burst, delayed ACKs, Nagle) and with the latency preset.
#[test]
fn presets_on_the_simulated_wire() {
    sim_echo(
        WorkerConfig::throughput(),
        WorkerConfig::throughput_tcp(tcp_config()),
    );
    sim_echo(
        WorkerConfig::latency(),
        WorkerConfig::latency_tcp(tcp_config()),
    );
}

fn sim_echo(wc: WorkerConfig, tcp: TcpConfig) {
    let wire = MemWire::new(3);
    let dc = wire.add_port(MemPortConfig::new(mac(1))).unwrap().remove(0);
    let ds = wire.add_port(MemPortConfig::new(mac(2))).unwrap().remove(0);
    let now = Instant::ZERO;
    let mk = |dev: &wirespeed::port::mem::MemDevice, addr| {
        let caps = dev.caps().clone();
        (
            Interface::new(iface(caps.mac, addr), now).unwrap(),
            TcpStack::new(tcp, caps.checksum, [7; 48], now),
        )
    };
    let (ic, tc) = mk(&dc, CLIENT);
    let (is, ts) = mk(&ds, SERVER);
    let mut client = wirespeed::rt::Worker::new(
        ic,
        dc,
        tc,
        EchoClient::new(20, 3, 2000),
        wc.clone(),
        CrossCore::default(),
    );
    let mut server = wirespeed::rt::Worker::new(
        is,
        ds,
        ts,
        EchoServer::default(),
        wc.clone(),
        CrossCore::default(),
    );
    let mut t = now;
    let end = now + Duration::from_secs(30);
    while !client.finished() && t < end {
        client.poll(t);
        server.poll(t);
        let next = [client.poll_at(), server.poll_at(), wire.next_delivery()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(t + Duration::from_millis(1));
        t = next.max(t + Duration::from_micros(1));
    }
    let h = &client.handler;
    assert!(h.failed.is_empty(), "{:?}", h.failed);
    assert_eq!(h.done, 20);
    assert_eq!(h.mismatches, 0);
    assert_eq!(server.handler.accepted, 20);
    assert!(cross_core_mesh(2, 4).len() == 2);
}
