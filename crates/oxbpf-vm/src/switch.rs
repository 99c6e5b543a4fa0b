//! Collapsing compare-and-branch trees into table lookups.
//!
//! BPF has no indirect jump, so clang lowers a `switch` into a binary search
//! tree of `if rX op K goto` instructions. Interpreted one by one, each node
//! costs a dispatch and, with data-dependent input, a mispredicted branch.
//! This module finds such a tree — a set of conditional jumps on the same
//! register (same width, immediate operands) reachable from a root — and
//! computes, for every value of the register, which instruction the tree
//! leaves to and how many nodes it passes. The interpreter then runs the
//! whole tree as one lookup.
//!
//! Why it is exact: each node tests `v op K` for a constant `K`; in the
//! unsigned order its outcome can only change at `K` and `K + 1`, and a
//! signed test also at the sign boundary. Between consecutive breakpoints
//! every node's outcome is constant, so evaluating the tree once per interval
//! gives the answer for every value in it.

use oxbpf_isa::raw::*;

use crate::program::Op;

/// Smallest tree worth collapsing.
const MIN_NODES: usize = 3;
/// Largest tree considered.
const MAX_NODES: usize = 64;
/// Largest dense lookup table (entries).
const MAX_DENSE: u64 = 1024;

/// Where a value leaves the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Leaf {
    pub target: u32,
    /// Tree nodes executed on the way (each counts as one instruction).
    pub nodes: u32,
}

/// A collapsed tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SwitchTable {
    /// Compare all 64 bits (JMP) or the low 32 (JMP32).
    pub wide: bool,
    /// Sorted interval starts; `leaves[i]` holds for `[starts[i], starts[i+1])`.
    starts: Vec<u64>,
    leaves: Vec<Leaf>,
    /// Direct table for `[dense_lo, dense_lo + dense.len())`.
    dense_lo: u64,
    dense: Vec<Leaf>,
}

impl SwitchTable {
    #[inline(always)]
    pub fn lookup(&self, reg: u64) -> Leaf {
        let v = if self.wide { reg } else { reg as u32 as u64 };
        let rel = v.wrapping_sub(self.dense_lo);
        if let Some(l) = self
            .dense
            .get(rel as usize)
            .filter(|_| rel < self.dense.len() as u64)
        {
            return *l;
        }
        let i = self.starts.partition_point(|&s| s <= v);
        self.leaves[i.saturating_sub(1)]
    }
}

fn is_cond_imm(code: u8) -> bool {
    let class = code & 0x07;
    let op = code & 0xf0;
    (class == BPF_JMP || class == BPF_JMP32)
        && code & BPF_X == 0
        && !matches!(op, BPF_JA | BPF_CALL | BPF_EXIT | BPF_JSET)
}

/// Evaluates a node's condition on `v` (already truncated to the width).
fn taken(code: u8, v: u64, k: u64, wide: bool) -> bool {
    let (sv, sk) = if wide {
        (v as i64, k as i64)
    } else {
        (v as u32 as i32 as i64, k as u32 as i32 as i64)
    };
    match code & 0xf0 {
        BPF_JEQ => v == k,
        BPF_JNE => v != k,
        BPF_JGT => v > k,
        BPF_JGE => v >= k,
        BPF_JLT => v < k,
        BPF_JLE => v <= k,
        BPF_JSGT => sv > sk,
        BPF_JSGE => sv >= sk,
        BPF_JSLT => sv < sk,
        _ => sv <= sk,
    }
}

/// Tries to collapse the tree rooted at `root`; returns the table and the
/// tree's nodes.
pub(crate) fn build(ops: &[Op], root: usize) -> Option<(SwitchTable, Vec<usize>)> {
    let r = ops[root];
    if !is_cond_imm(r.code) {
        return None;
    }
    let wide = r.code & 0x07 == BPF_JMP;
    let reg = r.dst;
    let is_node = |pc: usize| {
        ops.get(pc).is_some_and(|o| {
            is_cond_imm(o.code) && o.dst == reg && (o.code & 0x07 == BPF_JMP) == wide
        })
    };
    // Collect the nodes reachable from the root through tree edges.
    let mut nodes = vec![root];
    let mut seen = std::collections::HashSet::from([root]);
    let mut i = 0;
    while i < nodes.len() {
        let pc = nodes[i];
        i += 1;
        for next in [pc + 1, ops[pc].off as usize] {
            if is_node(next) && seen.insert(next) {
                if nodes.len() >= MAX_NODES {
                    return None;
                }
                nodes.push(next);
            }
        }
    }
    if nodes.len() < MIN_NODES {
        return None;
    }
    let mask = if wide { u64::MAX } else { u32::MAX as u64 };
    let k_of = |o: &Op| (o.imm as u64) & mask;
    let mut starts = vec![0u64, (mask >> 1) + 1];
    for &pc in &nodes {
        let k = k_of(&ops[pc]);
        starts.push(k);
        if k < mask {
            starts.push(k + 1);
        }
    }
    starts.sort_unstable();
    starts.dedup();
    let eval = |v: u64| -> Option<Leaf> {
        let mut pc = root;
        let mut count = 0u32;
        // The node set is acyclic in practice; a cycle through compares on
        // an unchanging register would loop forever, so refuse it.
        while seen.contains(&pc) {
            count += 1;
            if count as usize > nodes.len() {
                return None;
            }
            let o = ops[pc];
            pc = if taken(o.code, v, k_of(&o), wide) {
                o.off as usize
            } else {
                pc + 1
            };
        }
        Some(Leaf {
            target: pc as u32,
            nodes: count,
        })
    };
    let leaves: Vec<Leaf> = starts.iter().map(|&v| eval(v)).collect::<Option<_>>()?;
    // A dense table over the small constants, if they are close together.
    let finite: Vec<u64> = starts
        .iter()
        .copied()
        .filter(|&s| s != 0 && s != (mask >> 1) + 1)
        .collect();
    let (mut dense_lo, mut dense) = (0, Vec::new());
    if let (Some(&lo), Some(&hi)) = (finite.first(), finite.last())
        && hi - lo < MAX_DENSE
    {
        dense_lo = lo;
        dense = (lo..=hi).map(eval).collect::<Option<_>>()?;
    }
    Some((
        SwitchTable {
            wide,
            starts,
            leaves,
            dense_lo,
            dense,
        },
        nodes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Program;

    fn table(src: &str) -> (Program, Option<SwitchTable>) {
        let p = Program::from_bytes(&oxbpf_asm_bytes(src)).unwrap();
        let t = build(&p.ops, 0).map(|(t, _)| t);
        (p, t)
    }

    fn oxbpf_asm_bytes(src: &str) -> Vec<u8> {
        // Tiny in-test assembler: one slot per `code dst imm off` line.
        src.lines()
            .filter(|l| !l.trim().is_empty())
            .flat_map(|l| {
                let f: Vec<i64> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
                oxbpf_isa::RawInsn::new(f[0] as u8, f[1] as u8, 0, f[3] as i16, f[2] as i32)
                    .to_bytes()
            })
            .collect()
    }

    #[test]
    fn collapses_a_binary_search_tree_exactly() {
        // if w1 s> 1 goto L4 ; if w1 == 0 goto L5 ; exit(w1==1) ; L4: if w1 == 2 goto L5 ; exit ; L5: exit
        let (p, t) = table("102 1 1 2\n22 1 0 3\n149 0 0 0\n22 1 2 1\n149 0 0 0\n149 0 0 0");
        let t = t.expect("tree of 3 nodes");
        let slow = |v: u64| {
            let mut pc = 0usize;
            let mut n = 0;
            while [0, 1, 3].contains(&pc) {
                let o = p.ops[pc];
                n += 1;
                pc = if taken(o.code, v as u32 as u64, o.imm as u64 & 0xffff_ffff, false) {
                    o.off as usize
                } else {
                    pc + 1
                };
            }
            Leaf {
                target: pc as u32,
                nodes: n,
            }
        };
        for v in [
            0u64,
            1,
            2,
            3,
            4,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
            0x1_0000_0002,
            u64::MAX,
        ] {
            assert_eq!(t.lookup(v), slow(v), "value {v:#x}");
        }
    }
}
