//! A user-space UDP proxy that mistreats packets between a QUIC client and a node: drop,
//! delay (and so reorder), duplicate, corrupt, and partition (drop everything until healed).
//! Decisions come from a seeded PRNG, so a failing seed can be replayed.
//!
//! The proxy listens where the roster says the node is and forwards to where the node really
//! listens (`liaise node run --listen`). Answers go back from the listening socket, so the
//! client sees one peer address. It serves one client address at a time (the last one seen).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the proxy mistreats packets; probabilities in parts per thousand.
#[derive(Debug, Clone, Copy)]
pub struct Chaos {
    /// Seed of the PRNG.
    pub seed: u64,
    /// Dropped packets, per mille.
    pub drop: u32,
    /// Duplicated packets, per mille.
    pub duplicate: u32,
    /// Packets with one byte flipped, per mille.
    pub corrupt: u32,
    /// Every packet waits a uniformly random time up to this (so packets reorder).
    pub max_delay: Duration,
}

/// What the proxy did so far.
#[derive(Debug, Default)]
pub struct ChaosStats {
    /// Packets forwarded (duplicates counted once more).
    pub forwarded: AtomicU64,
    /// Packets dropped, by chance or by partition.
    pub dropped: AtomicU64,
    /// Packets duplicated.
    pub duplicated: AtomicU64,
    /// Packets corrupted.
    pub corrupted: AtomicU64,
}

/// SplitMix64: tiny, seeded, good enough to pick packets.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `per_mille`/1000.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.next_u64() % 1000 < u64::from(per_mille)
    }

    /// A number below `bound` (0 if `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Direction {
    ToNode,
    ToClient,
}

type Queue = (
    Mutex<BinaryHeap<Reverse<(Instant, u64, Direction, Vec<u8>)>>>,
    Condvar,
);

/// A running proxy; stops on drop.
#[derive(Debug)]
pub struct ChaosProxy {
    /// What it did so far.
    pub stats: Arc<ChaosStats>,
    partitioned: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl ChaosProxy {
    /// Listens on `listen`, forwards to `node`, mistreating packets per `chaos`.
    pub fn start(listen: SocketAddr, node: SocketAddr, chaos: Chaos) -> std::io::Result<Self> {
        let front = Arc::new(UdpSocket::bind(listen)?);
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0")?);
        back.connect(node)?;
        for s in [&front, &back] {
            s.set_read_timeout(Some(Duration::from_millis(50)))?;
        }
        let stats = Arc::new(ChaosStats::default());
        let partitioned = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let queue: Arc<Queue> = Arc::new((Mutex::new(BinaryHeap::new()), Condvar::new()));
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let rng = Arc::new(Mutex::new(SplitMix64::new(chaos.seed)));
        let seq = Arc::new(AtomicU64::new(0));

        let mut threads = Vec::new();
        for direction in [Direction::ToNode, Direction::ToClient] {
            let socket = match direction {
                Direction::ToNode => Arc::clone(&front),
                Direction::ToClient => Arc::clone(&back),
            };
            let (stats, partitioned, stop, queue, client, rng, seq) = (
                Arc::clone(&stats),
                Arc::clone(&partitioned),
                Arc::clone(&stop),
                Arc::clone(&queue),
                Arc::clone(&client),
                Arc::clone(&rng),
                Arc::clone(&seq),
            );
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    if direction == Direction::ToNode
                        && let Ok(mut c) = client.lock()
                    {
                        *c = Some(from);
                    }
                    let Some(packet) = buf.get(..n) else { continue };
                    if partitioned.load(Ordering::Relaxed) {
                        stats.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let Ok(mut rng) = rng.lock() else { return };
                    if rng.chance(chaos.drop) {
                        stats.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let copies = if rng.chance(chaos.duplicate) {
                        stats.duplicated.fetch_add(1, Ordering::Relaxed);
                        2
                    } else {
                        1
                    };
                    let max_us = chaos.max_delay.as_micros() as u64;
                    for _ in 0..copies {
                        let mut packet = packet.to_vec();
                        if rng.chance(chaos.corrupt) {
                            let at = rng.below(packet.len() as u64) as usize;
                            if let Some(b) = packet.get_mut(at) {
                                *b ^= 1 << rng.below(8);
                                stats.corrupted.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        let due = Instant::now() + Duration::from_micros(rng.below(max_us + 1));
                        let n = seq.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut heap) = queue.0.lock() {
                            heap.push(Reverse((due, n, direction, packet)));
                        }
                        queue.1.notify_one();
                    }
                }
            }));
        }
        let (stats2, stop2) = (Arc::clone(&stats), Arc::clone(&stop));
        threads.push(std::thread::spawn(move || {
            dispatch(&queue, &front, &back, &client, &stats2, &stop2);
        }));
        Ok(Self {
            stats,
            partitioned,
            stop,
            threads,
        })
    }

    /// Drops every packet from now on, both ways, until [`Self::heal`].
    pub fn partition(&self) {
        self.partitioned.store(true, Ordering::Relaxed);
    }

    /// Ends a partition.
    pub fn heal(&self) {
        self.partitioned.store(false, Ordering::Relaxed);
    }
}

/// Sends queued packets when they are due.
fn dispatch(
    queue: &Queue,
    front: &UdpSocket,
    back: &UdpSocket,
    client: &Mutex<Option<SocketAddr>>,
    stats: &ChaosStats,
    stop: &AtomicBool,
) {
    let Ok(mut heap) = queue.0.lock() else { return };
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let wait = match heap.peek() {
            Some(Reverse((due, ..))) if *due <= now => None,
            Some(Reverse((due, ..))) => Some((*due - now).min(Duration::from_millis(50))),
            None => Some(Duration::from_millis(50)),
        };
        if let Some(wait) = wait {
            heap = match queue.1.wait_timeout(heap, wait) {
                Ok((h, _)) => h,
                Err(_) => return,
            };
            continue;
        }
        let Some(Reverse((_, _, direction, packet))) = heap.pop() else {
            continue;
        };
        let sent = match direction {
            Direction::ToNode => back.send(&packet).is_ok(),
            Direction::ToClient => match client.lock().ok().and_then(|c| *c) {
                Some(to) => front.send_to(&packet, to).is_ok(),
                None => false,
            },
        };
        if sent {
            stats.forwarded.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
