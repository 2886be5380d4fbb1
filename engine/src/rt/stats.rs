//! Snapshots of a worker's counters, their totals over workers, and JSON.
//!
//! Each worker counts in its own plain structs (no atomics on the packet
//! path). A snapshot is taken on the worker's own core (walking its
//! connections for the per-state gauge, so about once a second, not per
//! packet) and can be summed with others' into a total.

use core::fmt::Write as _;

use super::worker::{LoopStats, WorkerCore};
use crate::net::NetStats;
use crate::port::Device;
use crate::tcp::{StackStats, State};

/// One worker's counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkerSnapshot {
    /// The worker's index; `None` for a total.
    pub worker: Option<usize>,
    /// The loop's counters.
    pub run: LoopStats,
    /// Layer 2/3 counters.
    pub net: NetStats,
    /// TCP layer counters.
    pub tcp: StackStats,
    /// Retransmitted segments, over all connections ever.
    pub retransmits: u64,
    /// Connections per state (indexed by `State as usize`).
    pub states: [u64; State::COUNT],
    /// Connection events dropped because no one collected them.
    pub dropped_events: u64,
    /// Segments the interface refused (no route, ARP queue full).
    pub send_errors: u64,
    /// Buffers of the port's pool currently handed out, where the port
    /// counts them.
    pub buffers_in_use: Option<u64>,
    /// The port driver's counters ([`Device::counters`]), by name; summed
    /// by name in a total.
    pub device: Vec<(String, u64)>,
}

impl WorkerSnapshot {
    /// A snapshot of `core`'s counters now.
    pub fn of<D: Device>(core: &WorkerCore<D>) -> Self {
        WorkerSnapshot {
            worker: Some(core.index),
            run: core.stats,
            net: *core.host.lp.iface.stats(),
            tcp: *core.host.tcp.stats(),
            retransmits: core.host.tcp.retransmits(),
            states: core.host.tcp.states(),
            dropped_events: core.host.dropped_events(),
            send_errors: core.host.send_errors(),
            buffers_in_use: core.host.lp.dev.buffers_in_use().map(|n| n as u64),
            device: {
                let mut d = Vec::new();
                core.host.lp.dev.counters(&mut d);
                d
            },
        }
    }

    /// The sum of `snaps`, counter by counter.
    pub fn total<'a>(snaps: impl IntoIterator<Item = &'a WorkerSnapshot>) -> Self {
        let mut t = WorkerSnapshot::default();
        for s in snaps {
            for (a, b) in loop_fields_mut(&mut t.run)
                .into_iter()
                .zip(loop_fields(&s.run))
            {
                *a += b.1;
            }
            t.net.accumulate(&s.net);
            for (a, b) in tcp_fields_mut(&mut t.tcp)
                .into_iter()
                .zip(tcp_fields(&s.tcp))
            {
                *a += b.1;
            }
            t.retransmits += s.retransmits;
            for (a, b) in t.states.iter_mut().zip(s.states) {
                *a += b;
            }
            t.dropped_events += s.dropped_events;
            t.send_errors += s.send_errors;
            t.buffers_in_use = match (t.buffers_in_use, s.buffers_in_use) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            };
            for (k, v) in &s.device {
                match t.device.iter_mut().find(|(n, _)| n == k) {
                    Some((_, total)) => *total += v,
                    None => t.device.push((k.clone(), *v)),
                }
            }
        }
        t
    }

    /// Open connections (any state).
    pub fn connections(&self) -> u64 {
        self.states.iter().sum()
    }

    /// The snapshot as one JSON object.
    pub fn to_json(&self) -> String {
        let mut o = String::with_capacity(2048);
        o.push('{');
        match self.worker {
            Some(w) => {
                let _ = write!(o, "\"worker\":{w},");
            }
            None => o.push_str("\"worker\":\"total\","),
        }
        object(&mut o, "loop", loop_fields(&self.run));
        o.push(',');
        object(&mut o, "net", self.net.iter().collect());
        o.push(',');
        object(&mut o, "tcp", tcp_fields(&self.tcp));
        o.push(',');
        let states: Vec<(&str, u64)> = State::ALL
            .iter()
            .map(|s| (s.name(), self.states[*s as usize]))
            .collect();
        object(&mut o, "states", states);
        o.push(',');
        object(
            &mut o,
            "device",
            self.device.iter().map(|(k, v)| (k.as_str(), *v)).collect(),
        );
        let _ = write!(
            o,
            ",\"connections\":{},\"retransmits\":{},\"dropped_events\":{},\"send_errors\":{},\"buffers_in_use\":{}}}",
            self.connections(),
            self.retransmits,
            self.dropped_events,
            self.send_errors,
            self.buffers_in_use
                .map_or_else(|| "null".to_string(), |n| n.to_string()),
        );
        o
    }
}

fn object(o: &mut String, name: &str, fields: Vec<(&str, u64)>) {
    let _ = write!(o, "\"{name}\":{{");
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        let _ = write!(o, "\"{k}\":{v}");
    }
    o.push('}');
}

/// Lists a struct's `u64` fields by name; the exhaustive destructuring
/// makes a new field a compile error here until it is listed.
macro_rules! fields {
    ($get:ident, $get_mut:ident, $ty:ident { $($f:ident),* $(,)? }) => {
        fn $get(s: &$ty) -> Vec<(&'static str, u64)> {
            let $ty { $($f),* } = *s;
            vec![$((stringify!($f), $f)),*]
        }
        fn $get_mut(s: &mut $ty) -> Vec<&mut u64> {
            let $ty { $($f),* } = s;
            vec![$($f),*]
        }
    };
}

fields!(
    loop_fields,
    loop_fields_mut,
    LoopStats {
        iterations,
        idle_iterations,
        rx_frames,
        tx_frames,
        forwarded_out,
        forwarded_in,
        steered_out,
        steered_in,
        forward_ring_full,
        forward_no_buffer,
        events,
        timers_fired,
        connect_errors,
    }
);

fields!(
    tcp_fields,
    tcp_fields_mut,
    StackStats {
        segments_in,
        segments_out,
        drop_malformed,
        drop_bad_checksum,
        rst_sent,
        drop_rst_for_nothing,
        syn_dropped,
        cookies_sent,
        cookies_accepted,
        cookies_rejected,
        active_opens,
        passive_opens,
        accept_overflow,
        time_wait_reused,
        closed,
        no_buffer,
        steered_away,
        retransmits_closed,
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_and_json_names_everything() {
        let mut a = WorkerSnapshot {
            worker: Some(0),
            ..Default::default()
        };
        a.run.rx_frames = 3;
        a.tcp.active_opens = 2;
        a.net.eth_rx_frames = 5;
        a.states[State::Established as usize] = 4;
        a.buffers_in_use = Some(10);
        a.device = vec![("tx_frames".into(), 7), ("port_rx_packets".into(), 100)];
        let mut b = a.clone();
        b.worker = Some(1);
        b.buffers_in_use = None;
        // Queue 1 reports no port-wide counters.
        b.device = vec![("tx_frames".into(), 9)];
        let t = WorkerSnapshot::total([&a, &b]);
        assert_eq!(t.worker, None);
        assert_eq!(t.run.rx_frames, 6);
        assert_eq!(t.tcp.active_opens, 4);
        assert_eq!(t.net.eth_rx_frames, 10);
        assert_eq!(t.connections(), 8);
        assert_eq!(t.buffers_in_use, Some(10));
        assert_eq!(
            t.device,
            [
                ("tx_frames".to_string(), 16),
                ("port_rx_packets".to_string(), 100)
            ]
        );
        let j = t.to_json();
        assert!(j.starts_with("{\"worker\":\"total\""));
        for name in [
            "\"rx_frames\":6",
            "\"active_opens\":4",
            "\"ESTABLISHED\":8",
            "\"eth_rx_frames\":10",
            "\"device\":{\"tx_frames\":16,\"port_rx_packets\":100}",
        ] {
            assert!(j.contains(name), "{name} missing in {j}");
        }
        assert_eq!(j.matches('{').count(), j.matches('}').count());
    }
}
