//! Writes the scripted seeds of the `tcp_conn` fuzz target into
//! `fuzz/seeds/tcp_conn/`: handshakes, data both ways, every way of
//! closing, loss recovery, zero windows, and the stack's listener with and
//! without SYN cookies, so the fuzzer starts deep in the state machine.
//!
//!     cd fuzz && cargo run --example tcp_conn_seeds
//!
//! The bytes follow the target's input layout as `arbitrary` decodes it
//! (enum variants as a little-endian u32 scaled to the variant count,
//! integers little-endian, `bool` and `Option` tags as one byte): keep the
//! variant numbers below in step with the enums in
//! `fuzz_targets/tcp_conn.rs`. `TCP_CONN_TRACE=1` on the target prints
//! what a seed decodes to.

use std::path::Path;

#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn i16(&mut self, v: i16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }
    /// Variant `i` of an enum with `n` variants.
    fn variant(&mut self, i: u32, n: u32) -> &mut Self {
        let x = ((u64::from(i) << 32) + u64::from(n) - 1) / u64::from(n);
        let x = u32::try_from(x).expect("variant index below count");
        assert_eq!((u64::from(x) * u64::from(n)) >> 32, u64::from(i));
        self.u32(x)
    }
    fn none(&mut self) -> &mut Self {
        self.bool(false)
    }
}

// Variant counts and numbers, as in fuzz_targets/tcp_conn.rs.
const START: u32 = 3;
const OP: u32 = 10;
const STACK_OP: u32 = 12;
const APP: u32 = 7;
const SEQ_REL: u32 = 3;
const ACK_REL: u32 = 5;
const TS_REL: u32 = 3;

/// Knobs: every option on (window scale, SACK, timestamps), delayed ACKs,
/// CUBIC; 64 KiB buffers; MSS 1000 (`64 + 936`).
fn knobs(e: &mut Enc, opts: u8, iss: u32) {
    e.u16(936) // mss
        .u8(5) // rcv_buf 65535
        .u8(5) // snd_buf 65535
        .u8(opts)
        .u8(2) // dup_thresh 3
        .u8(3) // challenge ACKs
        .u8(7) // max_ooo
        .u32(iss);
}

const ALL_OPTS: u8 = 0b0000_0111;

fn syn_opts(e: &mut Enc, irs: u32, window: u16, ts: bool) {
    e.u32(irs).u16(window);
    e.bool(true).u16(1460); // mss
    e.bool(true).u8(7); // wscale
    e.bool(true); // sack
    if ts {
        e.bool(true).u32(1);
    } else {
        e.none();
    }
}

struct SegSpec {
    flags: u8,
    /// None: RCV.NXT; Some(o): RCV.NXT + o.
    seq_off: Option<i16>,
    /// 0: SND.MAX, 1: SND.UNA, (2, o): SND.UNA + o.
    ack: (u32, i16),
    window: u16,
    sacks: Vec<(u16, u16)>,
    ts: bool,
    len: u16,
}

impl SegSpec {
    fn ack(window: u16) -> Self {
        SegSpec {
            flags: 0x10,
            seq_off: None,
            ack: (0, 0),
            window,
            sacks: Vec::new(),
            ts: true,
            len: 0,
        }
    }
    fn data(len: u16) -> Self {
        SegSpec {
            flags: 0x18,
            len,
            ..Self::ack(500)
        }
    }
    fn fin() -> Self {
        SegSpec {
            flags: 0x11,
            ..Self::ack(500)
        }
    }
}

fn seg(e: &mut Enc, s: &SegSpec) {
    e.u8(s.flags);
    match s.seq_off {
        None => e.variant(0, SEQ_REL),
        Some(o) => e.variant(1, SEQ_REL).i16(o),
    };
    match s.ack {
        (0, _) => e.variant(0, ACK_REL),
        (1, _) => e.variant(1, ACK_REL),
        (_, o) => e.variant(2, ACK_REL).i16(o),
    };
    e.u16(s.window);
    e.none(); // mss
    e.none(); // wscale
    e.bool(false); // sack_permitted
    for i in 0..3 {
        match s.sacks.get(i) {
            Some(&(off, len)) => e.bool(true).u16(off).u16(len),
            None => e.none(),
        };
    }
    if s.ts {
        e.bool(true).variant(0, TS_REL);
    } else {
        e.none();
    }
    e.u16(s.len).bool(false);
}

/// Connection-mode operations.
enum Op {
    Seg(SegSpec),
    AckAll(u16),
    Advance(u16),
    Fire,
    Drain,
    Events,
    Send(u16),
    Read(u16),
    Shutdown,
    Close,
}

fn app(e: &mut Enc, op: &Op) {
    match op {
        Op::Send(n) => e.variant(0, APP).u16(*n),
        Op::Read(n) => e.variant(2, APP).u16(*n),
        Op::Shutdown => e.variant(4, APP),
        Op::Close => e.variant(5, APP),
        _ => unreachable!(),
    };
}

fn ops(e: &mut Enc, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Seg(s) => {
                e.variant(0, OP);
                seg(e, s);
            }
            Op::AckAll(w) => {
                e.variant(1, OP).u16(*w);
            }
            Op::Advance(ms) => {
                e.variant(2, OP).u16(*ms);
            }
            Op::Fire => {
                e.variant(4, OP);
            }
            Op::Drain => {
                e.variant(5, OP).u8(0);
            }
            Op::Events => {
                e.variant(7, OP);
            }
            _ => {
                e.variant(9, OP);
                app(e, op);
            }
        }
    }
}

fn conn_seed(start: impl FnOnce(&mut Enc), script: &[Op]) -> Vec<u8> {
    let mut e = Enc::default();
    e.u8(0); // mode: one connection
    knobs(&mut e, ALL_OPTS, 1000);
    start(&mut e);
    ops(&mut e, script);
    e.0
}

fn active(e: &mut Enc) {
    e.variant(0, START).bool(true);
    syn_opts(e, 5000, 65_535, true);
}

fn passive(e: &mut Enc) {
    e.variant(1, START);
    syn_opts(e, 5000, 65_535, true);
    e.bool(true);
}

fn cookie(e: &mut Enc) {
    e.variant(2, START)
        .u32(5000)
        .u16(500)
        .u16(1460)
        .bool(true)
        .u8(7)
        .bool(true)
        .bool(true)
        .u32(1);
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    use Op::*;
    let mut v = Vec::new();
    // Active open, data both ways, we close after the peer: LAST-ACK.
    v.push((
        "active-data-lastack",
        conn_seed(
            active,
            &[
                Drain,
                Send(3000),
                Drain,
                AckAll(500),
                Seg(SegSpec::data(700)),
                Drain,
                Read(700),
                Seg(SegSpec::fin()),
                Drain,
                Events,
                Close,
                Drain,
                AckAll(500),
                Events,
            ],
        ),
    ));
    // Passive open, we close first: FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT,
    // CLOSED after 2·MSL.
    v.push((
        "passive-finwait-timewait",
        conn_seed(
            passive,
            &[
                Drain,
                Seg(SegSpec::data(1200)),
                Read(2000),
                Send(1500),
                Shutdown,
                Drain,
                AckAll(500),
                Seg(SegSpec::fin()),
                Drain,
                Events,
                Fire,
                Events,
            ],
        ),
    ));
    // Cookie open, simultaneous close: CLOSING, then TIME-WAIT.
    v.push((
        "cookie-closing",
        conn_seed(
            cookie,
            &[
                Send(400),
                Drain,
                AckAll(500),
                Shutdown,
                Drain,
                Seg(SegSpec {
                    flags: 0x11,
                    ack: (1, 0),
                    ..SegSpec::ack(500)
                }),
                Drain,
                AckAll(500),
                Events,
                Fire,
            ],
        ),
    ));
    // SYN retransmissions until the active open gives up.
    v.push((
        "active-syn-timeout",
        conn_seed(
            |e| {
                e.variant(0, START).none();
            },
            &[
                Drain, Fire, Drain, Fire, Drain, Fire, Drain, Fire, Drain, Fire, Drain, Fire,
                Drain, Fire, Drain, Events,
            ],
        ),
    ));
    // Loss: ten segments out, three duplicate ACKs with SACK blocks, fast
    // retransmit, a partial ACK, then everything.
    let dup = |sack_len: u16| {
        Seg(SegSpec {
            ack: (1, 0),
            sacks: vec![(1000, sack_len)],
            ..SegSpec::ack(500)
        })
    };
    v.push((
        "cookie-sack-recovery",
        conn_seed(
            cookie,
            &[
                Send(10_000),
                Drain,
                AckAll(500),
                Send(10_000),
                Drain,
                dup(1000),
                dup(2000),
                dup(3000),
                Drain,
                Seg(SegSpec {
                    ack: (2, 1000),
                    ..SegSpec::ack(500)
                }),
                Drain,
                Advance(300),
                AckAll(500),
                Drain,
            ],
        ),
    ));
    // Regression: a fast retransmission with data held back by Nagle
    // behind SND.MAX, then with the FIN queued after the loss.
    let dup_ack = || {
        Seg(SegSpec {
            ack: (1, 0),
            ..SegSpec::ack(500)
        })
    };
    for (name, shutdown) in [("cookie-rexmit-nagle", false), ("cookie-rexmit-fin", true)] {
        let mut script = vec![Send(100), Drain];
        if !shutdown {
            script.push(Send(100));
        }
        script.extend([dup_ack(), dup_ack(), dup_ack()]);
        if shutdown {
            script.push(Shutdown);
        }
        script.extend([Drain, AckAll(500), Events]);
        v.push((name, conn_seed(cookie, &script)));
    }
    // Zero window: the persist timer probes until the window opens.
    v.push((
        "passive-zero-window",
        conn_seed(
            passive,
            &[
                Drain,
                AckAll(0),
                Send(2000),
                Drain,
                Fire,
                Drain,
                Fire,
                Drain,
                AckAll(500),
                Drain,
                AckAll(500),
            ],
        ),
    ));
    // Out-of-order data, then the hole filled.
    v.push((
        "active-reorder",
        conn_seed(
            active,
            &[
                Drain,
                Seg(SegSpec {
                    seq_off: Some(500),
                    ..SegSpec::data(500)
                }),
                Drain,
                Seg(SegSpec::data(500)),
                Drain,
                Read(1000),
                Events,
            ],
        ),
    ));
    // The stack: a SYN to the listener, the handshake, data, accept, read,
    // close; then the same with the SYN backlog full (a cookie).
    for (name, syn_backlog) in [("stack-listen", 3u8), ("stack-cookie", 0)] {
        let mut e = Enc::default();
        e.u8(1); // mode: the stack
        knobs(&mut e, ALL_OPTS, 1000);
        e.u8(3).u8(syn_backlog).bool(true);
        let to_listener = |e: &mut Enc, s: &SegSpec| {
            e.variant(0, STACK_OP).u8(0).u8(0);
            seg(e, s);
            e.bool(false);
        };
        let mut syn = SegSpec::ack(65_535);
        syn.flags = 0x02;
        to_listener(&mut e, &syn);
        e.variant(7, STACK_OP).u8(0); // transmit
        to_listener(&mut e, &SegSpec::ack(500));
        to_listener(&mut e, &SegSpec::data(800));
        e.variant(7, STACK_OP).u8(0);
        e.variant(9, STACK_OP); // events
        e.variant(2, STACK_OP); // accept
        e.variant(3, STACK_OP).u8(0).variant(2, APP).u16(800);
        e.variant(3, STACK_OP).u8(0).variant(0, APP).u16(1200);
        e.variant(7, STACK_OP).u8(0);
        to_listener(&mut e, &SegSpec::fin());
        e.variant(3, STACK_OP).u8(0).variant(5, APP);
        e.variant(7, STACK_OP).u8(0);
        to_listener(&mut e, &SegSpec::ack(500));
        e.variant(9, STACK_OP);
        // An active open from the stack, answered.
        e.variant(1, STACK_OP).u8(1);
        e.variant(7, STACK_OP).u8(0);
        e.variant(0, STACK_OP).u8(1).u8(1);
        let mut syn_ack = SegSpec::ack(65_535);
        syn_ack.flags = 0x12;
        seg(&mut e, &syn_ack);
        e.bool(false);
        e.variant(7, STACK_OP).u8(0);
        e.variant(6, STACK_OP); // timers
        e.variant(9, STACK_OP);
        v.push((name, e.0));
    }
    v
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/tcp_conn");
    std::fs::create_dir_all(&dir).expect("create seeds/tcp_conn");
    for (name, bytes) in seeds() {
        std::fs::write(dir.join(format!("script-{name}")), &bytes).expect("write seed");
        println!("{name}: {} bytes", bytes.len());
    }
}
