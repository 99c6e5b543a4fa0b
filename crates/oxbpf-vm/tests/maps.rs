//! Map semantics against simple models (property tests), and the kernel's
//! errno rules on fixed cases.

use std::collections::{HashMap, VecDeque};

use oxbpf_vm::maps::{errno::*, map_type as mt, *};
use proptest::prelude::*;

fn spec(t: u32, k: u32, v: u32, n: u32) -> MapSpec {
    MapSpec {
        name: "m".into(),
        map_type: t,
        key_size: k,
        value_size: v,
        max_entries: n,
        flags: 0,
        map_extra: 0,
        inner: None,
        ..Default::default()
    }
}

fn e(x: Result<(), MapError>) -> i32 {
    match x {
        Ok(()) => 0,
        Err(MapError { errno: n }) => n,
    }
}

#[derive(Debug, Clone)]
enum Op {
    Update(u8, u8, u64),
    Delete(u8),
    Lookup(u8),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            (0u8..12, any::<u8>(), 0u64..3).prop_map(|(k, v, f)| Op::Update(k, v, f)),
            (0u8..12).prop_map(Op::Delete),
            (0u8..12).prop_map(Op::Lookup),
        ],
        0..200,
    )
}

proptest! {
    #[test]
    fn hash_matches_model(ops in ops()) {
        let m = Map::new(spec(mt::HASH, 1, 1, 6), 1).unwrap();
        let mut model: HashMap<u8, u8> = HashMap::new();
        for op in ops {
            match op {
                Op::Update(k, v, f) => {
                    let want = match (model.contains_key(&k), f) {
                        (true, BPF_NOEXIST) => EEXIST,
                        (false, BPF_EXIST) => ENOENT,
                        (false, _) if model.len() >= 6 => E2BIG,
                        _ => { model.insert(k, v); 0 }
                    };
                    prop_assert_eq!(e(m.update(&[k], &[v], f, None)), want);
                }
                Op::Delete(k) => {
                    let want = if model.remove(&k).is_some() { 0 } else { ENOENT };
                    prop_assert_eq!(e(m.delete(&[k])), want);
                }
                Op::Lookup(k) => {
                    prop_assert_eq!(m.lookup(&[k]).ok(), model.get(&k).map(|v| vec![*v]));
                }
            }
        }
        // Iteration visits every key exactly once.
        let mut seen: Vec<u8> = m.entries().iter().map(|(k, _)| k[0]).collect();
        seen.sort();
        let mut keys: Vec<u8> = model.keys().copied().collect();
        keys.sort();
        prop_assert_eq!(seen, keys);
    }

    #[test]
    fn lru_evicts_least_recently_used(ops in ops()) {
        let m = Map::new(spec(mt::LRU_HASH, 1, 1, 4), 1).unwrap();
        // Model: most recent at the back.
        let mut order: VecDeque<u8> = VecDeque::new();
        let mut vals: HashMap<u8, u8> = HashMap::new();
        let touch = |order: &mut VecDeque<u8>, k: u8| {
            order.retain(|&x| x != k);
            order.push_back(k);
        };
        for op in ops {
            match op {
                Op::Update(k, v, f) => {
                    let exists = vals.contains_key(&k);
                    let want = match (exists, f) {
                        (true, BPF_NOEXIST) => EEXIST,
                        (false, BPF_EXIST) => ENOENT,
                        _ => {
                            if !exists && vals.len() >= 4 {
                                let victim = order.pop_front().unwrap();
                                vals.remove(&victim);
                            }
                            vals.insert(k, v);
                            touch(&mut order, k);
                            0
                        }
                    };
                    prop_assert_eq!(e(m.update(&[k], &[v], f, None)), want);
                }
                Op::Delete(k) => {
                    let want = if vals.remove(&k).is_some() { order.retain(|&x| x != k); 0 } else { ENOENT };
                    prop_assert_eq!(e(m.delete(&[k])), want);
                }
                Op::Lookup(k) => {
                    // A program lookup marks the element used.
                    let got = m.lookup_addr(&[k], 0).is_some();
                    prop_assert_eq!(got, vals.contains_key(&k));
                    if got { touch(&mut order, k); }
                }
            }
        }
    }

    #[test]
    fn lpm_returns_longest_prefix(prefixes in prop::collection::vec((0u32..=32, any::<u32>(), any::<u8>()), 0..20), probe in any::<u32>()) {
        let m = Map::new(spec(mt::LPM_TRIE, 8, 1, 64), 1).unwrap();
        let mut model: Vec<(u32, u32, u8)> = Vec::new();
        for (len, addr, v) in prefixes {
            let masked = if len == 0 { 0 } else { addr & (u32::MAX << (32 - len)) };
            let key = [len.to_le_bytes(), addr.to_be_bytes()].concat();
            m.update(&key, &[v], BPF_ANY, None).unwrap();
            model.retain(|(l, a, _)| !(*l == len && *a == masked));
            model.push((len, masked, v));
        }
        let want = model
            .iter()
            .filter(|(l, a, _)| *l == 0 || (probe & (u32::MAX << (32 - l))) == *a)
            .max_by_key(|(l, ..)| *l)
            .map(|(_, _, v)| vec![*v]);
        let key = [32u32.to_le_bytes(), probe.to_be_bytes()].concat();
        prop_assert_eq!(m.lookup(&key).ok(), want);
    }

    #[test]
    fn queue_and_stack_match_vecdeque(vals in prop::collection::vec((any::<u8>(), any::<bool>(), any::<bool>()), 0..100)) {
        for lifo in [false, true] {
            let m = Map::new(spec(if lifo { mt::STACK } else { mt::QUEUE }, 0, 1, 5), 1).unwrap();
            let mut model: VecDeque<u8> = VecDeque::new();
            for (v, push, overwrite) in &vals {
                if *push {
                    let f = if *overwrite { BPF_EXIST } else { BPF_ANY };
                    let want = if model.len() >= 5 {
                        if *overwrite { model.pop_front(); model.push_back(*v); 0 } else { E2BIG }
                    } else { model.push_back(*v); 0 };
                    prop_assert_eq!(e(m.push(&[*v], f)), want);
                } else {
                    let want = if lifo { model.pop_back() } else { model.pop_front() };
                    prop_assert_eq!(m.pop(true).ok(), want.map(|x| vec![x]));
                }
            }
        }
    }

    #[test]
    fn bloom_has_no_false_negatives(vals in prop::collection::vec(any::<u32>(), 1..50)) {
        let m = Map::new(spec(mt::BLOOM_FILTER, 0, 4, 100), 1).unwrap();
        for v in &vals {
            m.push(&v.to_le_bytes(), BPF_ANY).unwrap();
        }
        for v in &vals {
            prop_assert!(m.bloom_contains(&v.to_le_bytes()).is_ok());
        }
    }
}

#[test]
fn array_follows_kernel_rules() {
    let m = Map::new(spec(mt::ARRAY, 4, 8, 4), 1).unwrap();
    assert_eq!(m.lookup(&1u32.to_le_bytes()).unwrap(), vec![0; 8]);
    assert_eq!(
        e(m.update(&1u32.to_le_bytes(), &[1; 8], BPF_NOEXIST, None)),
        EEXIST
    );
    assert_eq!(
        e(m.update(&9u32.to_le_bytes(), &[1; 8], BPF_ANY, None)),
        E2BIG
    );
    assert_eq!(e(m.delete(&1u32.to_le_bytes())), EINVAL);
    assert_eq!(e(m.update(&1u32.to_le_bytes(), &[1; 8], 3, None)), EINVAL);
    assert_eq!(m.next_key(None).unwrap(), 0u32.to_le_bytes());
    assert_eq!(
        m.next_key(Some(&3u32.to_le_bytes())),
        Err(MapError::new(ENOENT))
    );
    assert_eq!(
        m.next_key(Some(&77u32.to_le_bytes())).unwrap(),
        0u32.to_le_bytes()
    );
    assert!(Map::new(spec(mt::ARRAY, 8, 8, 4), 1).is_err());
    assert!(Map::new(spec(mt::RINGBUF, 0, 0, 4000), 1).is_err());
}

#[test]
fn percpu_values_are_per_cpu() {
    let m = Map::new(spec(mt::PERCPU_ARRAY, 4, 4, 2), 3).unwrap();
    let k = 1u32.to_le_bytes();
    m.update(&k, &7u32.to_le_bytes(), BPF_ANY, Some(2)).unwrap();
    // The host sees every CPU's value, 8-byte padded.
    let all = m.lookup(&k).unwrap();
    assert_eq!(all.len(), 24);
    assert_eq!(&all[16..20], &7u32.to_le_bytes());
    assert_eq!(&all[0..4], &[0; 4]);
}

#[test]
fn ringbuf_keeps_order_and_reuses_space() {
    let m = Map::new(spec(mt::RINGBUF, 0, 0, 4096), 1).unwrap();
    let a = m.ringbuf_reserve(1000).unwrap();
    let b = m.ringbuf_reserve(1000).unwrap();
    assert!(m.ringbuf_reserve(3000).is_none(), "no room left");
    assert!(m.ringbuf_commit(b, true));
    // a is still reserved, so nothing can be consumed yet.
    assert!(m.ringbuf_drain().is_empty());
    assert!(m.ringbuf_commit(a, false));
    let got = m.ringbuf_drain();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].len(), 1000);
    assert!(m.ringbuf_reserve(2000).is_some());
}

#[test]
fn typed_view_checks_sizes_and_round_trips() {
    let m = Map::new(spec(mt::HASH, 4, 8, 16), 1).unwrap();
    assert!(TypedMap::<u64, u64>::new(&m).is_err());
    let t = TypedMap::<u32, u64>::new(&m).unwrap();
    t.insert(&7, &700).unwrap();
    t.insert(&8, &800).unwrap();
    assert_eq!(t.get(&7), Some(700));
    assert_eq!(t.get(&9), None);
    t.remove(&7).unwrap();
    assert_eq!(t.entries(), vec![(8, 800)]);
}

#[test]
fn maps_are_safe_to_share_between_threads() {
    let m = std::sync::Arc::new(Map::new(spec(mt::HASH, 4, 8, 4096), 1).unwrap());
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                for i in 0..500u32 {
                    let k = t * 1000 + i;
                    m.update(&k.to_le_bytes(), &(k as u64).to_le_bytes(), BPF_ANY, None)
                        .unwrap();
                    assert!(m.lookup_addr(&k.to_le_bytes(), 0).is_some());
                    if i % 2 == 0 {
                        m.delete(&k.to_le_bytes()).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(m.entries().len(), 4 * 250);
}
