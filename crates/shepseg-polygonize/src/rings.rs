//! Joining the strips' open chains into rings and rings into finished segments (pure).
//!
//! Strips are added in order, top to bottom. A chain's head meets the tail of a chain of the
//! strip above (or, for a boundary coming up from below, waits for the strip below) at equal
//! [`Crossing`]s; joined chains form paths, and a path whose tail meets its own head is a ring.
//! A segment is finished when none of its chains is open and its closed rings enclose exactly
//! its pixel count (outer rings minus holes): no part of it can still be to come.

use std::collections::HashMap;

use crate::trace::{Chain, Crossing, Ring, StripTrace, Vertex};

/// A chain in a path of joined chains.
struct Node {
    chain: Chain,
    next: Option<usize>,
    /// At a path's first node its last, at its last its first.
    other_end: usize,
}

/// A segment's closed rings so far.
#[derive(Default)]
struct Pending {
    rings: Vec<Ring>,
    area2: i64,
}

/// The rings and counts of a segment that was not finished when it should have been.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssemblerError {
    /// A segment's rings enclose more pixels than its count says, or it has pixels and no
    /// count: the pixel counts do not describe the image.
    CountMismatch {
        /// Segment ID.
        label: u32,
        /// Pixels its rings enclose so far.
        enclosed: u64,
        /// Its count.
        count: u64,
    },
    /// Chains or rings left over at the end (a bug).
    Unfinished(String),
}

/// Joins strips; see the module docs.
pub struct Assembler<'a> {
    counts: &'a [u64],
    nodes: Vec<Option<Node>>,
    free: Vec<usize>,
    /// Paths' last nodes by the crossing their tail waits at.
    tails: HashMap<Crossing, usize>,
    /// Paths' first nodes by the crossing their head waits at.
    heads: HashMap<Crossing, usize>,
    /// Open chains per segment.
    open: HashMap<u32, u32>,
    pending: HashMap<u32, Pending>,
}

impl<'a> Assembler<'a> {
    /// An assembler for a segment image whose segment `id` has `counts[id]` pixels.
    pub fn new(counts: &'a [u64]) -> Self {
        Self {
            counts,
            nodes: Vec::new(),
            free: Vec::new(),
            tails: HashMap::new(),
            heads: HashMap::new(),
            open: HashMap::new(),
            pending: HashMap::new(),
        }
    }

    /// Adds the next strip; returns the segments it finished, with their rings.
    pub fn add_strip(
        &mut self,
        strip: StripTrace,
    ) -> Result<Vec<(u32, Vec<Ring>)>, AssemblerError> {
        let mut touched = Vec::new();
        for ring in strip.rings {
            touched.push(ring.label);
            self.add_ring(ring);
        }
        for chain in strip.chains {
            *self.open.entry(chain.label).or_insert(0) += 1;
            let (head, tail) = (chain.head, chain.tail);
            let id = self.insert(Node {
                chain,
                next: None,
                other_end: 0,
            });
            if let Some(n) = self.nodes[id].as_mut() {
                n.other_end = id;
            }
            match self.tails.remove(&head) {
                Some(a) => {
                    if let Some(l) = self.link(a, id) {
                        touched.push(l);
                    }
                }
                None => {
                    self.heads.insert(head, id);
                }
            }
            // `id` may now be inside a path; its tail is still that path's tail.
            match self.heads.remove(&tail) {
                Some(b) => {
                    if let Some(l) = self.link(id, b) {
                        touched.push(l);
                    }
                }
                None => {
                    self.tails.insert(tail, id);
                }
            }
        }
        touched.sort_unstable();
        touched.dedup();
        let mut done = Vec::new();
        for label in touched {
            if self.open.get(&label).copied().unwrap_or(0) > 0 {
                continue;
            }
            let count = self.counts.get(label as usize).copied().unwrap_or(0);
            let Some(p) = self.pending.get(&label) else {
                continue;
            };
            let enclosed = (p.area2 / 2).max(0) as u64;
            if enclosed == count {
                if let Some(p) = self.pending.remove(&label) {
                    self.open.remove(&label);
                    done.push((label, p.rings));
                }
            } else if enclosed > count {
                return Err(AssemblerError::CountMismatch {
                    label,
                    enclosed,
                    count,
                });
            }
        }
        Ok(done)
    }

    /// Checks that nothing is left once every strip is in.
    pub fn finish(self) -> Result<(), AssemblerError> {
        if let Some((&label, p)) = self.pending.iter().min_by_key(|(l, _)| **l) {
            return Err(AssemblerError::CountMismatch {
                label,
                enclosed: (p.area2 / 2).max(0) as u64,
                count: self.counts.get(label as usize).copied().unwrap_or(0),
            });
        }
        if !self.tails.is_empty() || !self.heads.is_empty() {
            return Err(AssemblerError::Unfinished(format!(
                "{} boundary pieces never closed",
                self.tails.len() + self.heads.len()
            )));
        }
        Ok(())
    }

    fn insert(&mut self, node: Node) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.nodes[i] = Some(node);
                i
            }
            None => {
                self.nodes.push(Some(node));
                self.nodes.len() - 1
            }
        }
    }

    fn node(&mut self, i: usize) -> &mut Node {
        self.nodes[i]
            .as_mut()
            .unwrap_or_else(|| unreachable!("node {i} is live while linked"))
    }

    /// Joins path ending at `a` to the path starting at `b`; if they are one path, closes it
    /// into a ring and returns its segment.
    fn link(&mut self, a: usize, b: usize) -> Option<u32> {
        let first = self.node(a).other_end;
        if first == b {
            self.node(a).next = Some(b);
            return Some(self.close(b));
        }
        let last = self.node(b).other_end;
        self.node(a).next = Some(b);
        self.node(first).other_end = last;
        self.node(last).other_end = first;
        None
    }

    /// Takes the ring starting at node `start` out of the nodes.
    fn close(&mut self, start: usize) -> u32 {
        let mut verts: Vec<Vertex> = Vec::new();
        let mut at = start;
        let mut pieces = 0;
        let mut label = 0;
        let mut first_join = None;
        let mut pinched = false;
        while let Some(node) = self.nodes[at].take() {
            self.free.push(at);
            pieces += 1;
            let chain = node.chain;
            label = chain.label;
            pinched |= chain.pinched;
            // The vertex where the previous chain meets this one is a corner only if the
            // boundary turns there.
            let straight = chain.first_move == chain.head.dir;
            if verts.is_empty() {
                first_join = Some(straight);
                verts.extend_from_slice(&chain.verts);
            } else {
                if straight {
                    verts.pop();
                }
                verts.extend_from_slice(&chain.verts[1..]);
            }
            match node.next {
                Some(n) if n != start => at = n,
                _ => break,
            }
        }
        // The last vertex is the first again.
        verts.pop();
        if first_join == Some(true) && !verts.is_empty() {
            verts.remove(0);
        }
        if let Some(o) = self.open.get_mut(&label) {
            *o = o.saturating_sub(pieces);
        }
        self.add_ring(Ring::new(label, verts, pinched));
        label
    }

    fn add_ring(&mut self, ring: Ring) {
        let p = self.pending.entry(ring.label).or_default();
        for ring in ring.split_pinches() {
            p.area2 += ring.area2;
            p.rings.push(ring);
        }
    }
}
