//! A fixed delay on the packets of a network namespace, for kernels without `sch_netem`:
//! an iptables rule hands packets to an NFQUEUE, and a thread of the test process, moved into
//! that namespace, accepts each packet a fixed time after the kernel queued it.
//!
//! The rule is added with `--queue-bypass` and the queue fails open, so a packet is never lost
//! for want of this reader: at worst it goes through undelayed.

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};
use nix::sched::{CloneFlags, setns};

// netlink and nfnetlink_queue constants (linux/netlink.h, linux/netfilter/nfnetlink_queue.h).
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQA_CFG_MASK: u16 = 4;
const NFQA_CFG_FLAGS: u16 = 5;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_CFG_CMD_UNBIND: u8 = 2;
const NFQNL_COPY_META: u8 = 1;
const NFQA_CFG_F_FAIL_OPEN: u32 = 1;
const NF_ACCEPT: u32 = 1;

/// Packets one queue may hold: far above what a lab's nodes have in flight over the delay.
const QUEUE_LEN: u32 = 8192;

/// A running delay; stopped (its queue unbound, its threads joined) when dropped.
pub(crate) struct Delay {
    socket: Arc<Socket>,
    queue: u16,
    stop: Arc<AtomicBool>,
    held: Arc<AtomicU64>,
    reader: Option<JoinHandle<()>>,
}

impl Delay {
    /// Reads NFQUEUE `queue` in namespace `ns` (a name under `/run/netns`), accepting each
    /// packet `by` after it arrived. The caller adds the iptables rules that fill the queue.
    pub(crate) fn start(ns: &str, queue: u16, by: Duration) -> Delay {
        let path = format!("/run/netns/{ns}");
        let (ready, bound) = mpsc::channel::<Result<Arc<Socket>, String>>();
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(AtomicU64::new(0));
        let reader = {
            let (stop, held) = (stop.clone(), held.clone());
            std::thread::spawn(move || match bind(&path, queue) {
                Ok(socket) => {
                    let socket = Arc::new(socket);
                    let _ = ready.send(Ok(socket.clone()));
                    read(&socket, queue, by, &stop, &held);
                }
                Err(why) => {
                    let _ = ready.send(Err(why));
                }
            })
        };
        let socket = bound
            .recv()
            .expect("the delay's reader ended before binding")
            .unwrap_or_else(|why| panic!("NFQUEUE {queue} in {ns}: {why}"));
        Delay {
            socket,
            queue,
            stop,
            held,
            reader: Some(reader),
        }
    }

    /// Packets delayed so far: a lab checks its traffic really went through the delay.
    pub(crate) fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }
}

impl Drop for Delay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // The kernel's answer to the unbind wakes the reader, which then sees `stop`.
        let unbind = config(
            self.queue,
            &[(NFQA_CFG_CMD, &command(NFQNL_CFG_CMD_UNBIND))],
        );
        if self.socket.send(&unbind, 0).is_ok()
            && let Some(reader) = self.reader.take()
        {
            let _ = reader.join();
        }
    }
}

/// Enters namespace `path` (this thread only), opens a netfilter socket there and binds
/// `queue`, asking for packet metadata only, a long queue, and fail-open when it is full.
fn bind(path: &str, queue: u16) -> Result<Socket, String> {
    let ns = File::open(path).map_err(|e| format!("{path}: {e}"))?;
    setns(ns, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns: {e}"))?;
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(|e| format!("socket: {e}"))?;
    socket
        .bind(&SocketAddr::new(0, 0))
        .map_err(|e| format!("bind: {e}"))?;
    let _ = socket.set_rx_buf_sz(1 << 22);
    let mut params = 0xffff_u32.to_be_bytes().to_vec();
    params.push(NFQNL_COPY_META);
    let fail_open = NFQA_CFG_F_FAIL_OPEN.to_be_bytes();
    let messages = [
        config(queue, &[(NFQA_CFG_CMD, &command(NFQNL_CFG_CMD_BIND))]),
        config(
            queue,
            &[
                (NFQA_CFG_PARAMS, &params),
                (NFQA_CFG_QUEUE_MAXLEN, &QUEUE_LEN.to_be_bytes()),
                (NFQA_CFG_MASK, &fail_open),
                (NFQA_CFG_FLAGS, &fail_open),
            ],
        ),
    ];
    let mut buf = Vec::with_capacity(1 << 16);
    for message in messages {
        socket.send(&message, 0).map_err(|e| format!("send: {e}"))?;
        buf.clear();
        socket.recv(&mut buf, 0).map_err(|e| format!("recv: {e}"))?;
        match parse(&buf).next() {
            Some(Frame::Ack(0)) => {}
            Some(Frame::Ack(errno)) => {
                return Err(format!(
                    "refused: {}",
                    std::io::Error::from_raw_os_error(-errno)
                ));
            }
            _ => return Err("no answer to the queue's configuration".to_owned()),
        }
    }
    Ok(socket)
}

/// Takes queued packets until `stop`, handing each to a thread that accepts it when due.
fn read(socket: &Arc<Socket>, queue: u16, by: Duration, stop: &AtomicBool, held: &AtomicU64) {
    let (due, verdicts) = mpsc::channel::<(Instant, u32)>();
    let sender = {
        let socket = socket.clone();
        std::thread::spawn(move || {
            for (at, id) in verdicts {
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                let _ = socket.send(&verdict(queue, id), 0);
            }
        })
    };
    let mut buf = Vec::with_capacity(1 << 16);
    while !stop.load(Ordering::Relaxed) {
        buf.clear();
        // ENOBUFS (notifications lost to a full socket buffer) leaves those packets to the
        // queue's fail-open; anything else ends the delay.
        match socket.recv(&mut buf, 0) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOBUFS) => continue,
            Err(_) => break,
        }
        let arrived = Instant::now();
        for frame in parse(&buf) {
            if let Frame::Packet(id) = frame {
                held.fetch_add(1, Ordering::Relaxed);
                let _ = due.send((arrived + by, id));
            }
        }
    }
    drop(due);
    let _ = sender.join();
}

/// What a netlink datagram from the queue carries.
enum Frame {
    /// An acknowledgement: 0, or a negative errno.
    Ack(i32),
    /// A queued packet's id.
    Packet(u32),
    Other,
}

/// The frames of one datagram; a malformed tail ends the iteration.
fn parse(buf: &[u8]) -> impl Iterator<Item = Frame> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let header = buf.get(at..at + 16)?;
        let len = u32::from_ne_bytes(header[0..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(header[4..6].try_into().ok()?);
        let message = buf.get(at..at + len).filter(|_| len >= 16)?;
        at += align(len);
        Some(if kind == NLMSG_ERROR {
            let errno = message.get(16..20)?;
            Frame::Ack(i32::from_ne_bytes(errno.try_into().ok()?))
        } else if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET {
            packet_id(message.get(20..)?).map_or(Frame::Other, Frame::Packet)
        } else {
            Frame::Other
        })
    })
}

/// The packet id in a queued packet's attributes.
fn packet_id(mut attrs: &[u8]) -> Option<u32> {
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        let value = attrs.get(4..len)?;
        if kind == NFQA_PACKET_HDR {
            return Some(u32::from_be_bytes(value.get(0..4)?.try_into().ok()?));
        }
        attrs = attrs.get(align(len).max(4)..)?;
    }
    None
}

fn command(command: u8) -> [u8; 4] {
    // struct nfqnl_msg_config_cmd: command, padding, protocol family (unused since Linux 3.8).
    [command, 0, 0, 0]
}

fn config(queue: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    message(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, queue, attrs)
}

fn verdict(queue: u16, id: u32) -> Vec<u8> {
    let mut header = NF_ACCEPT.to_be_bytes().to_vec();
    header.extend_from_slice(&id.to_be_bytes());
    message(
        NFQNL_MSG_VERDICT,
        NLM_F_REQUEST,
        queue,
        &[(NFQA_VERDICT_HDR, &header)],
    )
}

/// A netlink message of the queue subsystem: header, `nfgenmsg` naming the queue, attributes.
fn message(kind: u16, flags: u16, queue: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut out = vec![0; 16];
    out[4..6].copy_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | kind).to_ne_bytes());
    out[6..8].copy_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&[0, 0]); // AF_UNSPEC, NFNETLINK_V0
    out.extend_from_slice(&queue.to_be_bytes());
    for (kind, value) in attrs {
        let len = 4 + value.len();
        out.extend_from_slice(&(len as u16).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(value);
        out.resize(align(out.len()), 0);
    }
    let len = out.len() as u32;
    out[0..4].copy_from_slice(&len.to_ne_bytes());
    out
}

fn align(len: usize) -> usize {
    (len + 3) & !3
}
