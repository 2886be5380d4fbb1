//! Recording frames to pcap files, and a device wrapper that records.
//!
//! [`PcapWriter`] writes the classic pcap format with nanosecond timestamps
//! (magic `0xa1b23c4d`, little-endian), link type Ethernet, snap length
//! 65535. Timestamps are the engine's [`Instant`]s (time since the clock's
//! origin, not the Unix epoch): relative times in tshark/Wireshark are right.
//!
//! [`PcapDevice`] wraps any [`Device`] and records every frame received and
//! every frame the inner device took for sending, stamped with the `now` of
//! the call. Recording is for debugging: it copies each sent frame once into
//! a scratch buffer (the inner device removes sent frames from the caller's
//! vector, so they cannot be read afterwards). A write error stops recording
//! and is kept for [`PcapDevice::take_error`]; traffic goes on.

use std::io::{self, Write};

use super::{Device, DeviceCaps};
use crate::buf::PacketBuf;
use crate::time::Instant;

/// Nanosecond-resolution pcap magic.
pub const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Longest frame part recorded.
pub const SNAPLEN: u32 = 65535;

/// A classic pcap file being written.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header to `out`.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&MAGIC_NANOS.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes()); // version 2.4
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // 8..16: thiszone and sigfigs, zero.
        h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter { out })
    }

    /// Appends one frame seen at `now` (cut to [`SNAPLEN`] bytes).
    pub fn write_packet(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        let nanos = now.as_nanos();
        let secs = u32::try_from(nanos / 1_000_000_000).unwrap_or(u32::MAX);
        let sub = (nanos % 1_000_000_000) as u32;
        let orig = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let incl = orig.min(SNAPLEN);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&secs.to_le_bytes());
        h[4..8].copy_from_slice(&sub.to_le_bytes());
        h[8..12].copy_from_slice(&incl.to_le_bytes());
        h[12..16].copy_from_slice(&orig.to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(&frame[..incl as usize])
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Gives back the underlying writer (not flushed).
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// A device that records its traffic to a pcap file.
#[derive(Debug)]
pub struct PcapDevice<D: Device, W: Write> {
    inner: D,
    writer: PcapWriter<W>,
    error: Option<io::Error>,
    /// Copies of the frames offered to the inner device's `tx_burst`.
    scratch: Vec<u8>,
    ends: Vec<usize>,
}

impl<D: Device, W: Write> PcapDevice<D, W> {
    /// Wraps `inner`, recording to `writer`.
    pub fn new(inner: D, writer: PcapWriter<W>) -> Self {
        PcapDevice {
            inner,
            writer,
            error: None,
            scratch: Vec::new(),
            ends: Vec::new(),
        }
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The wrapped device, mutably (frames sent through it are not recorded).
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// The first write error, if recording stopped; clears it and resumes.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    /// Flushes the recording.
    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }

    /// The device and the writer, apart.
    pub fn into_parts(self) -> (D, PcapWriter<W>) {
        (self.inner, self.writer)
    }

    fn record(&mut self, now: Instant, frame: &[u8]) {
        if self.error.is_none() {
            if let Err(e) = self.writer.write_packet(now, frame) {
                self.error = Some(e);
            }
        }
    }
}

impl<D: Device, W: Write> Device for PcapDevice<D, W> {
    type Buf = D::Buf;

    fn caps(&self) -> &DeviceCaps {
        self.inner.caps()
    }

    fn rx_burst(&mut self, now: Instant, out: &mut Vec<D::Buf>, max: usize) -> usize {
        let start = out.len();
        let n = self.inner.rx_burst(now, out, max);
        for buf in out.iter().skip(start) {
            self.record(now, buf.as_slice());
        }
        n
    }

    fn tx_burst(&mut self, now: Instant, frames: &mut Vec<D::Buf>) -> usize {
        let recording = self.error.is_none();
        if recording {
            self.scratch.clear();
            self.ends.clear();
            for buf in frames.iter() {
                // A frame's own bytes, then its attached payload.
                self.scratch.extend_from_slice(buf.as_slice());
                self.scratch.extend_from_slice(buf.attached());
                self.ends.push(self.scratch.len());
            }
        }
        let taken = self.inner.tx_burst(now, frames);
        if recording {
            let mut begin = 0;
            for &end in self.ends.iter().take(taken) {
                let frame = self.scratch.get(begin..end).unwrap_or(&[]);
                if let Err(e) = self.writer.write_packet(now, frame) {
                    self.error = Some(e);
                    break;
                }
                begin = end;
            }
        }
        taken
    }

    fn alloc_tx(&mut self) -> Option<D::Buf> {
        self.inner.alloc_tx()
    }

    fn poll_at(&self) -> Option<Instant> {
        self.inner.poll_at()
    }

    fn recycle(&mut self, buf: D::Buf) {
        self.inner.recycle(buf);
    }

    fn buffers_in_use(&self) -> Option<usize> {
        self.inner.buffers_in_use()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::mem::{MemPortConfig, MemWire};
    use crate::wire::EthernetAddress;

    /// (timestamp in ns, original length, bytes) of each record.
    fn parse(file: &[u8]) -> Vec<(u64, u32, Vec<u8>)> {
        let u32_at = |at: usize| u32::from_le_bytes(file[at..at + 4].try_into().unwrap());
        assert_eq!(u32_at(0), MAGIC_NANOS);
        assert_eq!(&file[4..8], &[2, 0, 4, 0]);
        assert_eq!((u32_at(16), u32_at(20)), (SNAPLEN, LINKTYPE_ETHERNET));
        let mut at = 24;
        let mut records = Vec::new();
        while at < file.len() {
            let ts = u64::from(u32_at(at)) * 1_000_000_000 + u64::from(u32_at(at + 4));
            let (incl, orig) = (u32_at(at + 8) as usize, u32_at(at + 12));
            records.push((ts, orig, file[at + 16..at + 16 + incl].to_vec()));
            at += 16 + incl;
        }
        assert_eq!(at, file.len());
        records
    }

    fn frame(dst: u8, src: u8, fill: u8, len: usize) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, dst, 0x02, 0, 0, 0, 0, src, 0x88, 0xb5];
        f.resize(len, fill);
        f
    }

    #[test]
    fn writer_round_trips_and_cuts_at_snaplen() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        let a = frame(2, 1, 0xaa, 60);
        let big = frame(2, 1, 0xbb, 70_000);
        w.write_packet(Instant::from_nanos(1_500_000_123), &a)
            .unwrap();
        w.write_packet(Instant::from_millis(2), &big).unwrap();
        let recs = parse(&w.into_inner());
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0], (1_500_000_123, 60, a));
        assert_eq!((recs[1].0, recs[1].1), (2_000_000, 70_000));
        assert_eq!(recs[1].2, big[..SNAPLEN as usize]);
    }

    #[test]
    fn device_records_both_directions() {
        let wire = MemWire::new(1);
        let mac = |i| EthernetAddress([0x02, 0, 0, 0, 0, i]);
        let a = wire.add_port(MemPortConfig::new(mac(1))).unwrap().remove(0);
        let mut b = wire.add_port(MemPortConfig::new(mac(2))).unwrap().remove(0);
        let mut a = PcapDevice::new(a, PcapWriter::new(Vec::new()).unwrap());
        assert_eq!(a.caps().mac, mac(1));

        let sent: Vec<Vec<u8>> = (0..3)
            .map(|i| frame(2, 1, i, 64 + usize::from(i)))
            .collect();
        let mut bufs: Vec<_> = sent
            .iter()
            .map(|f| {
                let mut buf = a.alloc_tx().unwrap();
                buf.append(f.len()).unwrap().copy_from_slice(f);
                buf
            })
            .collect();
        assert_eq!(a.tx_burst(Instant::from_micros(10), &mut bufs), 3);

        let mut got = Vec::new();
        b.rx_burst(Instant::from_micros(10), &mut got, 8);
        assert_eq!(got.len(), 3);
        let reply = frame(1, 2, 9, 80);
        let mut buf = b.alloc_tx().unwrap();
        buf.append(reply.len()).unwrap().copy_from_slice(&reply);
        b.tx_burst(Instant::from_micros(20), &mut vec![buf]);
        let mut rx = Vec::new();
        assert_eq!(a.rx_burst(Instant::from_micros(30), &mut rx, 8), 1);

        let (_, w) = a.into_parts();
        let recs = parse(&w.into_inner());
        let mut want: Vec<(u64, u32, Vec<u8>)> = sent
            .iter()
            .map(|f| (10_000, f.len() as u32, f.clone()))
            .collect();
        want.push((30_000, 80, reply));
        assert_eq!(recs, want);
    }

    #[test]
    fn tshark_reads_the_file() {
        let tshark = std::path::Path::new("/usr/bin/tshark");
        if !tshark.exists() {
            eprintln!("skipped: /usr/bin/tshark is not installed");
            return;
        }
        let path = std::env::temp_dir().join(format!("wirespeed-pcap-{}.pcap", std::process::id()));
        let mut w = PcapWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
        for i in 0..5u8 {
            w.write_packet(Instant::from_millis(u64::from(i)), &frame(2, 1, i, 60))
                .unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let out = std::process::Command::new(tshark)
            .args(["-n", "-r"])
            .arg(&path)
            .env("HOME", std::env::temp_dir())
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.lines().count(), 5, "{text}");
    }
}
