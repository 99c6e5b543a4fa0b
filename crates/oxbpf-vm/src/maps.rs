//! BPF maps in user space, with the kernel's semantics: the same flags
//! (`BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST`), the same errno results, the same
//! capacity rules. Values live in [`Arena`]s so programs can hold pointers
//! to them; bookkeeping is behind locks, so maps can be shared between
//! threads.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use crate::arena::Arena;

use errno::*;
/// Errno values the map operations return (as the kernel does, positive
/// here): the ABI crate's.
pub use oxbpf_abi::errno;

/// Update flags.
pub use oxbpf_abi::flags::{BPF_ANY, BPF_EXIST, BPF_F_LOCK, BPF_NOEXIST};

use map_type as mt;
/// Map types (`enum bpf_map_type`): the ABI crate's.
pub use oxbpf_abi::map_type;

/// What a map is: the object loader's spec, shared with the kernel backend.
pub use oxbpf_obj::MapSpec;

/// A map operation failed with this errno, as the kernel's would.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} (errno {errno})", errno_name(*errno))]
pub struct MapError {
    pub errno: i32,
}

impl MapError {
    /// The error `errno` (`EINVAL`, `ENOENT`, ...).
    pub const fn new(errno: i32) -> MapError {
        MapError { errno }
    }
}

/// The errno's name (`EINVAL`), or `error` for a number without one.
pub fn errno_name(e: i32) -> &'static str {
    oxbpf_abi::errno_name(e).unwrap_or("error")
}

type R<T> = Result<T, MapError>;

fn err<T>(e: i32) -> R<T> {
    Err(MapError::new(e))
}

/// Values are stored in 8-byte strides, as the kernel rounds them.
fn stride(value_size: u32) -> usize {
    (value_size as usize).div_ceil(8) * 8
}

/// Largest arena a single map may allocate (guards against absurd specs).
const MAX_MAP_BYTES: u64 = 1 << 30;

/// Slot bookkeeping for hash-like maps: key -> slot, recency for LRU.
struct HashState {
    index: HashMap<Vec<u8>, usize>,
    keys: Vec<Option<Vec<u8>>>,
    free: Vec<usize>,
    /// LRU: stamp -> slot, and slot -> stamp.
    by_stamp: BTreeMap<u64, usize>,
    stamp_of: Vec<u64>,
    clock: u64,
}

impl HashState {
    fn new(n: usize) -> HashState {
        HashState {
            index: HashMap::new(),
            keys: vec![None; n],
            free: (0..n).rev().collect(),
            by_stamp: BTreeMap::new(),
            stamp_of: vec![0; n],
            clock: 0,
        }
    }

    fn touch(&mut self, slot: usize) {
        let old = self.stamp_of[slot];
        self.by_stamp.remove(&old);
        self.clock += 1;
        self.stamp_of[slot] = self.clock;
        self.by_stamp.insert(self.clock, slot);
    }

    fn remove_slot(&mut self, slot: usize) {
        if let Some(k) = self.keys[slot].take() {
            self.index.remove(&k);
        }
        let st = self.stamp_of[slot];
        self.by_stamp.remove(&st);
        self.free.push(slot);
    }
}

struct Ring {
    /// (offset in data, length, state) in allocation order.
    records: VecDeque<(usize, usize, RecState)>,
    next: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RecState {
    Reserved,
    Submitted,
    Discarded,
}

/// One LPM trie entry.
struct LpmEntry {
    prefixlen: u32,
    data: Vec<u8>,
    slot: usize,
}

enum Imp {
    /// array, percpu_array
    Array {
        values: Arena,
    },
    /// hash, percpu_hash, lru_hash, lru_percpu_hash
    Hash {
        values: Arena,
        state: Mutex<HashState>,
        lru: bool,
    },
    /// prog_array, array_of_maps: slots hold ids.
    IdArray {
        ids: Mutex<Vec<Option<u32>>>,
    },
    /// hash_of_maps
    IdHash {
        ids: Mutex<HashMap<Vec<u8>, u32>>,
    },
    /// queue and stack
    Fifo {
        items: Mutex<VecDeque<Vec<u8>>>,
        lifo: bool,
    },
    Lpm {
        values: Arena,
        state: Mutex<(Vec<LpmEntry>, Vec<usize>)>,
    },
    Bloom {
        bits: Mutex<Vec<u64>>,
        hashes: u32,
    },
    RingBuf {
        data: Arena,
        ring: Mutex<Ring>,
    },
    PerfEventArray {
        events: Mutex<VecDeque<(u32, Vec<u8>)>>,
    },
}

/// A map.
pub struct Map {
    pub spec: MapSpec,
    /// Number of CPUs emulated for per-CPU maps.
    pub ncpus: u32,
    imp: Imp,
}

impl std::fmt::Debug for Map {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Map").field("spec", &self.spec).finish()
    }
}

fn is_percpu(t: u32) -> bool {
    matches!(t, mt::PERCPU_ARRAY | mt::PERCPU_HASH | mt::LRU_PERCPU_HASH)
}

impl Map {
    /// Creates a map, checking the definition as the kernel's map_create does.
    pub fn new(spec: MapSpec, ncpus: u32) -> R<Map> {
        let ncpus = ncpus.max(1);
        let t = spec.map_type;
        let n = spec.max_entries as usize;
        let bytes = |per: usize| -> R<Arena> {
            let total = (n as u64)
                .checked_mul(per as u64)
                .filter(|&b| b <= MAX_MAP_BYTES)
                .ok_or(MapError::new(E2BIG))?;
            Ok(Arena::new(total as usize))
        };
        let cpus = if is_percpu(t) { ncpus as usize } else { 1 };
        if spec.max_entries == 0 && !matches!(t, mt::PERF_EVENT_ARRAY) {
            return err(EINVAL);
        }
        // Maps keeping bookkeeping per entry (up to 32 bytes each) are held
        // to the same memory limit as their values: a hostile definition
        // gets E2BIG, not an allocation that aborts the process.
        if matches!(
            t,
            mt::HASH
                | mt::PERCPU_HASH
                | mt::LRU_HASH
                | mt::LRU_PERCPU_HASH
                | mt::PROG_ARRAY
                | mt::ARRAY_OF_MAPS
                | mt::LPM_TRIE
        ) && (n as u64) * 32 > MAX_MAP_BYTES
        {
            return err(E2BIG);
        }
        let imp = match t {
            mt::ARRAY | mt::PERCPU_ARRAY => {
                if spec.key_size != 4 || spec.value_size == 0 {
                    return err(EINVAL);
                }
                Imp::Array {
                    values: bytes(stride(spec.value_size) * cpus)?,
                }
            }
            mt::HASH | mt::PERCPU_HASH | mt::LRU_HASH | mt::LRU_PERCPU_HASH => {
                if spec.key_size == 0 || spec.value_size == 0 {
                    return err(EINVAL);
                }
                Imp::Hash {
                    values: bytes(stride(spec.value_size) * cpus)?,
                    state: Mutex::new(HashState::new(n)),
                    lru: matches!(t, mt::LRU_HASH | mt::LRU_PERCPU_HASH),
                }
            }
            mt::PROG_ARRAY | mt::ARRAY_OF_MAPS => {
                if spec.key_size != 4 || spec.value_size != 4 {
                    return err(EINVAL);
                }
                Imp::IdArray {
                    ids: Mutex::new(vec![None; n]),
                }
            }
            mt::HASH_OF_MAPS => {
                if spec.key_size == 0 || spec.value_size != 4 {
                    return err(EINVAL);
                }
                Imp::IdHash {
                    ids: Mutex::new(HashMap::new()),
                }
            }
            mt::QUEUE | mt::STACK => {
                if spec.key_size != 0 || spec.value_size == 0 {
                    return err(EINVAL);
                }
                Imp::Fifo {
                    items: Mutex::new(VecDeque::new()),
                    lifo: t == mt::STACK,
                }
            }
            mt::LPM_TRIE => {
                if spec.key_size <= 4 || spec.key_size > 4 + 256 || spec.value_size == 0 {
                    return err(EINVAL);
                }
                Imp::Lpm {
                    values: bytes(stride(spec.value_size))?,
                    state: Mutex::new((Vec::new(), (0..n).rev().collect())),
                }
            }
            mt::BLOOM_FILTER => {
                if spec.key_size != 0 || spec.value_size == 0 {
                    return err(EINVAL);
                }
                let hashes = match spec.map_extra & 0xf {
                    0 => 5,
                    h => h as u32,
                };
                // Bits: entries * hashes / ln 2, rounded up to a power of two.
                let nbits = ((n as u64 * hashes as u64 * 100 / 69).max(64)).next_power_of_two();
                if nbits > MAX_MAP_BYTES * 8 {
                    return err(E2BIG);
                }
                Imp::Bloom {
                    bits: Mutex::new(vec![0; (nbits / 64) as usize]),
                    hashes,
                }
            }
            mt::RINGBUF => {
                if spec.key_size != 0
                    || spec.value_size != 0
                    || !spec.max_entries.is_power_of_two()
                    || spec.max_entries < 4096
                    || spec.max_entries as u64 > MAX_MAP_BYTES
                {
                    return err(EINVAL);
                }
                Imp::RingBuf {
                    data: Arena::new(n),
                    ring: Mutex::new(Ring {
                        records: VecDeque::new(),
                        next: 0,
                    }),
                }
            }
            mt::PERF_EVENT_ARRAY => Imp::PerfEventArray {
                events: Mutex::new(VecDeque::new()),
            },
            _ => return err(EOPNOTSUPP),
        };
        Ok(Map { spec, ncpus, imp })
    }

    fn check_key(&self, key: &[u8]) -> R<()> {
        if key.len() != self.spec.key_size as usize {
            return err(EINVAL);
        }
        Ok(())
    }

    fn cpus(&self) -> usize {
        if is_percpu(self.spec.map_type) {
            self.ncpus as usize
        } else {
            1
        }
    }

    /// Byte offset of (slot, cpu) in the value arena.
    fn off(&self, slot: usize, cpu: u32) -> usize {
        (slot * self.cpus() + (cpu as usize % self.cpus())) * stride(self.spec.value_size)
    }

    /// The arena programs may access, if the map has one.
    pub fn arena(&self) -> Option<&Arena> {
        match &self.imp {
            Imp::Array { values } | Imp::Hash { values, .. } | Imp::Lpm { values, .. } => {
                Some(values)
            }
            _ => None,
        }
    }

    /// A ring buffer's data: programs reach it only through the records
    /// they reserve (see [`MemoryMap::open_window`](crate::memory::MemoryMap::open_window)).
    pub fn ring_data(&self) -> Option<&Arena> {
        match &self.imp {
            Imp::RingBuf { data, .. } => Some(data),
            _ => None,
        }
    }

    /// `bpf_map_lookup_elem` from a program running on `cpu`: the address
    /// of the value, or None. (Maps of maps are looked up with
    /// [`Map::lookup_id`].)
    pub fn lookup_addr(&self, key: &[u8], cpu: u32) -> Option<u64> {
        self.check_key(key).ok()?;
        match &self.imp {
            Imp::Array { values } => {
                let i = u32::from_le_bytes(key.try_into().ok()?) as usize;
                (i < self.spec.max_entries as usize).then(|| values.addr(self.off(i, cpu)))
            }
            Imp::Hash { values, state, lru } => {
                let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                let slot = *st.index.get(key)?;
                if *lru {
                    st.touch(slot);
                }
                Some(values.addr(self.off(slot, cpu)))
            }
            Imp::Lpm { values, state } => {
                let st = state.lock().unwrap_or_else(|p| p.into_inner());
                lpm_match(&st.0, key).map(|e| values.addr(self.off(e.slot, 0)))
            }
            _ => None,
        }
    }

    /// Lookup in prog arrays and maps of maps: the stored id.
    pub fn lookup_id(&self, key: &[u8]) -> Option<u32> {
        self.check_key(key).ok()?;
        match &self.imp {
            Imp::IdArray { ids } => {
                let i = u32::from_le_bytes(key.try_into().ok()?) as usize;
                ids.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(i)
                    .copied()
                    .flatten()
            }
            Imp::IdHash { ids } => ids
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(key)
                .copied(),
            _ => None,
        }
    }

    /// Host lookup: the value bytes (for per-CPU maps, all CPUs' values,
    /// each padded to 8 bytes, as the kernel's syscall returns them).
    pub fn lookup(&self, key: &[u8]) -> R<Vec<u8>> {
        self.check_key(key)?;
        let vs = self.spec.value_size as usize;
        let gather = |values: &Arena, slot: usize| -> Vec<u8> {
            if self.cpus() == 1 {
                values.to_vec(self.off(slot, 0), vs)
            } else {
                let mut out = Vec::with_capacity(self.cpus() * stride(self.spec.value_size));
                for c in 0..self.cpus() {
                    let mut v = values.to_vec(self.off(slot, c as u32), vs);
                    v.resize(stride(self.spec.value_size), 0);
                    out.extend(v);
                }
                out
            }
        };
        match &self.imp {
            Imp::Array { values } => {
                let i =
                    u32::from_le_bytes(key.try_into().map_err(|_| MapError::new(EINVAL))?) as usize;
                if i >= self.spec.max_entries as usize {
                    return err(ENOENT);
                }
                Ok(gather(values, i))
            }
            Imp::Hash { values, state, .. } => {
                let st = state.lock().unwrap_or_else(|p| p.into_inner());
                let slot = *st.index.get(key).ok_or(MapError::new(ENOENT))?;
                Ok(gather(values, slot))
            }
            Imp::Lpm { values, state } => {
                let st = state.lock().unwrap_or_else(|p| p.into_inner());
                let e = lpm_match(&st.0, key).ok_or(MapError::new(ENOENT))?;
                Ok(values.to_vec(self.off(e.slot, 0), vs))
            }
            Imp::IdArray { .. } | Imp::IdHash { .. } => self
                .lookup_id(key)
                .map(|id| id.to_le_bytes().to_vec())
                .ok_or(MapError::new(ENOENT)),
            _ => err(EINVAL),
        }
    }

    /// Update from a program (one CPU's value) or the host (`all_cpus`:
    /// per-CPU maps take every CPU's value, 8-byte padded).
    pub fn update(&self, key: &[u8], value: &[u8], flags: u64, cpu: Option<u32>) -> R<()> {
        self.check_key(key)?;
        if flags & !(BPF_NOEXIST | BPF_EXIST | BPF_F_LOCK) != 0 || flags & 3 == 3 {
            return err(EINVAL);
        }
        let vs = self.spec.value_size as usize;
        let write = |values: &Arena, slot: usize| -> R<()> {
            match cpu {
                Some(c) => {
                    if value.len() < vs {
                        return err(EINVAL);
                    }
                    values.write(self.off(slot, c), &value[..vs]);
                }
                None if self.cpus() > 1 => {
                    let st = stride(self.spec.value_size);
                    if value.len() < st * self.cpus() {
                        return err(EINVAL);
                    }
                    for c in 0..self.cpus() {
                        values.write(self.off(slot, c as u32), &value[c * st..c * st + vs]);
                    }
                }
                None => {
                    if value.len() < vs {
                        return err(EINVAL);
                    }
                    values.write(self.off(slot, 0), &value[..vs]);
                }
            }
            Ok(())
        };
        match &self.imp {
            Imp::Array { values } => {
                let i =
                    u32::from_le_bytes(key.try_into().map_err(|_| MapError::new(EINVAL))?) as usize;
                if i >= self.spec.max_entries as usize {
                    return err(E2BIG);
                }
                if flags & 3 == BPF_NOEXIST {
                    return err(EEXIST);
                }
                write(values, i)
            }
            Imp::Hash { values, state, lru } => {
                let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                let existing = st.index.get(key).copied();
                match (existing, flags & 3) {
                    (Some(_), BPF_NOEXIST) => return err(EEXIST),
                    (None, BPF_EXIST) => return err(ENOENT),
                    _ => {}
                }
                let slot = match existing {
                    Some(s) => s,
                    None => {
                        let slot = match st.free.pop() {
                            Some(s) => s,
                            None if *lru => {
                                let Some((_, &victim)) = st.by_stamp.iter().next() else {
                                    return err(E2BIG);
                                };
                                st.remove_slot(victim);
                                st.free.pop().ok_or(MapError::new(E2BIG))?
                            }
                            None => return err(E2BIG),
                        };
                        st.index.insert(key.to_vec(), slot);
                        st.keys[slot] = Some(key.to_vec());
                        // New elements start zeroed (other CPUs of per-CPU maps too).
                        let st_bytes = stride(self.spec.value_size) * self.cpus();
                        values.zero(slot * st_bytes, st_bytes);
                        slot
                    }
                };
                if *lru {
                    st.touch(slot);
                }
                write(values, slot)
            }
            Imp::IdArray { ids } => {
                let i =
                    u32::from_le_bytes(key.try_into().map_err(|_| MapError::new(EINVAL))?) as usize;
                let mut ids = ids.lock().unwrap_or_else(|p| p.into_inner());
                if i >= ids.len() {
                    return err(E2BIG);
                }
                if flags & 3 == BPF_NOEXIST {
                    return err(EEXIST);
                }
                let id = u32::from_le_bytes(
                    value
                        .get(..4)
                        .ok_or(MapError::new(EINVAL))?
                        .try_into()
                        .map_err(|_| MapError::new(EINVAL))?,
                );
                ids[i] = Some(id);
                Ok(())
            }
            Imp::IdHash { ids } => {
                let mut ids = ids.lock().unwrap_or_else(|p| p.into_inner());
                let exists = ids.contains_key(key);
                match (exists, flags & 3) {
                    (true, BPF_NOEXIST) => return err(EEXIST),
                    (false, BPF_EXIST) => return err(ENOENT),
                    (false, _) if ids.len() >= self.spec.max_entries as usize => return err(E2BIG),
                    _ => {}
                }
                let id = u32::from_le_bytes(
                    value
                        .get(..4)
                        .ok_or(MapError::new(EINVAL))?
                        .try_into()
                        .map_err(|_| MapError::new(EINVAL))?,
                );
                ids.insert(key.to_vec(), id);
                Ok(())
            }
            Imp::Lpm { values, state } => {
                let prefixlen =
                    u32::from_le_bytes(key[..4].try_into().map_err(|_| MapError::new(EINVAL))?);
                let data = &key[4..];
                if prefixlen as usize > data.len() * 8 {
                    return err(EINVAL);
                }
                let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                let canon = mask_prefix(data, prefixlen);
                let pos =
                    st.0.iter()
                        .position(|e| e.prefixlen == prefixlen && e.data == canon);
                match (pos, flags & 3) {
                    (Some(_), BPF_NOEXIST) => return err(EEXIST),
                    (None, BPF_EXIST) => return err(ENOENT),
                    _ => {}
                }
                let slot = match pos {
                    Some(p) => st.0[p].slot,
                    None => {
                        let slot = st.1.pop().ok_or(MapError::new(ENOSPC))?;
                        st.0.push(LpmEntry {
                            prefixlen,
                            data: canon,
                            slot,
                        });
                        slot
                    }
                };
                if value.len() < self.spec.value_size as usize {
                    return err(EINVAL);
                }
                values.write(self.off(slot, 0), &value[..self.spec.value_size as usize]);
                Ok(())
            }
            Imp::Fifo { .. } | Imp::Bloom { .. } => self.push(value, flags),
            _ => err(EINVAL),
        }
    }

    pub fn delete(&self, key: &[u8]) -> R<()> {
        self.check_key(key)?;
        match &self.imp {
            Imp::Array { .. } => err(EINVAL),
            Imp::Hash { state, .. } => {
                let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                let slot = *st.index.get(key).ok_or(MapError::new(ENOENT))?;
                st.remove_slot(slot);
                Ok(())
            }
            Imp::IdArray { ids } => {
                let i =
                    u32::from_le_bytes(key.try_into().map_err(|_| MapError::new(EINVAL))?) as usize;
                let mut ids = ids.lock().unwrap_or_else(|p| p.into_inner());
                match ids.get_mut(i) {
                    None => err(E2BIG),
                    Some(s) => s.take().map(|_| ()).ok_or(MapError::new(ENOENT)),
                }
            }
            Imp::IdHash { ids } => ids
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(key)
                .map(|_| ())
                .ok_or(MapError::new(ENOENT)),
            Imp::Lpm { state, .. } => {
                let prefixlen =
                    u32::from_le_bytes(key[..4].try_into().map_err(|_| MapError::new(EINVAL))?);
                let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                let canon = mask_prefix(&key[4..], prefixlen);
                let pos =
                    st.0.iter()
                        .position(|e| e.prefixlen == prefixlen && e.data == canon)
                        .ok_or(MapError::new(ENOENT))?;
                let e = st.0.swap_remove(pos);
                st.1.push(e.slot);
                Ok(())
            }
            _ => err(EINVAL),
        }
    }

    /// `BPF_MAP_GET_NEXT_KEY`: the key after `key` (the first key for None
    /// or a key that is not present), or ENOENT at the end.
    pub fn next_key(&self, key: Option<&[u8]>) -> R<Vec<u8>> {
        if let Some(k) = key {
            self.check_key(k)?;
        }
        match &self.imp {
            Imp::Array { .. } | Imp::IdArray { .. } => {
                let next = match key {
                    None => 0,
                    Some(k) => {
                        let i =
                            u32::from_le_bytes(k.try_into().map_err(|_| MapError::new(EINVAL))?);
                        if i >= self.spec.max_entries {
                            0
                        } else {
                            i as u64 + 1
                        }
                    }
                };
                if next >= self.spec.max_entries as u64 {
                    return err(ENOENT);
                }
                Ok((next as u32).to_le_bytes().to_vec())
            }
            Imp::Hash { state, .. } => {
                let st = state.lock().unwrap_or_else(|p| p.into_inner());
                let start = key
                    .and_then(|k| st.index.get(k))
                    .map(|s| s + 1)
                    .unwrap_or(0);
                st.keys[start.min(st.keys.len())..]
                    .iter()
                    .flatten()
                    .next()
                    .cloned()
                    .ok_or(MapError::new(ENOENT))
            }
            Imp::IdHash { ids } => {
                let ids = ids.lock().unwrap_or_else(|p| p.into_inner());
                let mut keys: Vec<&Vec<u8>> = ids.keys().collect();
                keys.sort();
                let pos = match key {
                    Some(k) => keys
                        .iter()
                        .position(|x| x.as_slice() > k)
                        .unwrap_or(keys.len()),
                    None => 0,
                };
                keys.get(pos)
                    .map(|k| (*k).clone())
                    .ok_or(MapError::new(ENOENT))
            }
            Imp::Lpm { state, .. } => {
                let st = state.lock().unwrap_or_else(|p| p.into_inner());
                let mut keys: Vec<Vec<u8>> =
                    st.0.iter()
                        .map(|e| [e.prefixlen.to_le_bytes().to_vec(), e.data.clone()].concat())
                        .collect();
                keys.sort();
                let pos = match key {
                    Some(k) => keys
                        .iter()
                        .position(|x| x.as_slice() > k)
                        .unwrap_or(keys.len()),
                    None => 0,
                };
                keys.get(pos).cloned().ok_or(MapError::new(ENOENT))
            }
            _ => err(EINVAL),
        }
    }

    /// `bpf_map_push_elem` (queue, stack, bloom filter).
    pub fn push(&self, value: &[u8], flags: u64) -> R<()> {
        let vs = self.spec.value_size as usize;
        if value.len() < vs {
            return err(EINVAL);
        }
        match &self.imp {
            Imp::Fifo { items, .. } => {
                if flags & !BPF_EXIST != 0 {
                    return err(EINVAL);
                }
                let mut q = items.lock().unwrap_or_else(|p| p.into_inner());
                if q.len() >= self.spec.max_entries as usize {
                    if flags & BPF_EXIST == 0 {
                        return err(E2BIG);
                    }
                    // Overwrite the oldest element.
                    q.pop_front();
                }
                q.push_back(value[..vs].to_vec());
                Ok(())
            }
            Imp::Bloom { bits, hashes } => {
                let mut b = bits.lock().unwrap_or_else(|p| p.into_inner());
                let n = b.len() as u64 * 64;
                for i in 0..*hashes {
                    let h = bloom_hash(&value[..vs], i) % n;
                    b[(h / 64) as usize] |= 1 << (h % 64);
                }
                Ok(())
            }
            _ => err(EINVAL),
        }
    }

    /// `bpf_map_pop_elem` / `bpf_map_peek_elem`.
    pub fn pop(&self, remove: bool) -> R<Vec<u8>> {
        match &self.imp {
            Imp::Fifo { items, lifo } => {
                let mut q = items.lock().unwrap_or_else(|p| p.into_inner());
                let v = match (lifo, remove) {
                    (true, true) => q.pop_back(),
                    (false, true) => q.pop_front(),
                    (true, false) => q.back().cloned(),
                    (false, false) => q.front().cloned(),
                };
                v.ok_or(MapError::new(ENOENT))
            }
            _ => err(EINVAL),
        }
    }

    /// `bpf_map_peek_elem` on a bloom filter: Ok if `value` may be present.
    pub fn bloom_contains(&self, value: &[u8]) -> R<()> {
        match &self.imp {
            Imp::Bloom { bits, hashes } => {
                let vs = self.spec.value_size as usize;
                if value.len() < vs {
                    return err(EINVAL);
                }
                let b = bits.lock().unwrap_or_else(|p| p.into_inner());
                let n = b.len() as u64 * 64;
                for i in 0..*hashes {
                    let h = bloom_hash(&value[..vs], i) % n;
                    if b[(h / 64) as usize] & (1 << (h % 64)) == 0 {
                        return err(ENOENT);
                    }
                }
                Ok(())
            }
            _ => err(EINVAL),
        }
    }

    /// `bpf_ringbuf_reserve`: address of `size` writable bytes, or None.
    pub fn ringbuf_reserve(&self, size: u64) -> Option<u64> {
        let Imp::RingBuf { data, ring } = &self.imp else {
            return None;
        };
        let len = (size as usize).div_ceil(8) * 8;
        if size == 0 || len > data.len() / 2 {
            return None;
        }
        let mut r = ring.lock().unwrap_or_else(|p| p.into_inner());
        let cap = data.len();
        let start = match (r.records.front(), r.records.back()) {
            (Some(&(oldest, ..)), Some(&(newest, ..))) => {
                if newest >= oldest {
                    // Used space is [oldest, next): free at the end, then the start.
                    if r.next + len <= cap {
                        r.next
                    } else if len <= oldest {
                        0
                    } else {
                        return None;
                    }
                } else if r.next + len <= oldest {
                    // Wrapped: free space is [next, oldest).
                    r.next
                } else {
                    return None;
                }
            }
            _ => 0,
        };
        r.records.push_back((start, len, RecState::Reserved));
        r.next = start + len;
        data.zero(start, len);
        Some(data.addr(start))
    }

    /// `bpf_ringbuf_submit` / `discard` of a reservation at `addr`.
    pub fn ringbuf_commit(&self, addr: u64, submit: bool) -> bool {
        let Imp::RingBuf { data, ring } = &self.imp else {
            return false;
        };
        let mut r = ring.lock().unwrap_or_else(|p| p.into_inner());
        let off = addr.wrapping_sub(data.addr(0)) as usize;
        match r
            .records
            .iter_mut()
            .find(|x| x.0 == off && x.2 == RecState::Reserved)
        {
            Some(rec) => {
                rec.2 = if submit {
                    RecState::Submitted
                } else {
                    RecState::Discarded
                };
                true
            }
            None => false,
        }
    }

    /// Host side: takes the submitted records in order (stopping at a
    /// record that is still reserved), freeing their space.
    pub fn ringbuf_drain(&self) -> Vec<Vec<u8>> {
        let Imp::RingBuf { data, ring } = &self.imp else {
            return Vec::new();
        };
        let mut r = ring.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        while let Some(&(off, len, state)) = r.records.front() {
            match state {
                RecState::Reserved => break,
                RecState::Submitted => out.push(data.to_vec(off, len)),
                RecState::Discarded => {}
            }
            r.records.pop_front();
        }
        if r.records.is_empty() {
            r.next = 0;
        }
        out
    }

    /// Bytes reserved or submitted and not yet consumed (`BPF_RB_AVAIL_DATA`).
    pub fn ringbuf_pending(&self) -> u64 {
        let Imp::RingBuf { ring, .. } = &self.imp else {
            return 0;
        };
        let r = ring.lock().unwrap_or_else(|p| p.into_inner());
        r.records.iter().map(|x| x.1 as u64).sum()
    }

    /// `bpf_perf_event_output`: queues one record from `cpu`.
    pub fn perf_output(&self, cpu: u32, data: Vec<u8>) -> R<()> {
        match &self.imp {
            Imp::PerfEventArray { events } => {
                let mut q = events.lock().unwrap_or_else(|p| p.into_inner());
                q.push_back((cpu, data));
                Ok(())
            }
            _ => err(EINVAL),
        }
    }

    /// Host side: takes all queued perf records.
    pub fn perf_drain(&self) -> Vec<(u32, Vec<u8>)> {
        match &self.imp {
            Imp::PerfEventArray { events } => events
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .drain(..)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Every (key, value) pair, for dumping (per-CPU values concatenated).
    pub fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        match &self.imp {
            Imp::Fifo { items, .. } => items
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|v| (Vec::new(), v.clone()))
                .collect(),
            _ => {
                let mut out = Vec::new();
                let mut key: Option<Vec<u8>> = None;
                while let Ok(k) = self.next_key(key.as_deref()) {
                    if let Ok(v) = self.lookup(&k) {
                        out.push((k.clone(), v));
                    }
                    if out.len() > self.spec.max_entries as usize {
                        break;
                    }
                    key = Some(k);
                }
                out
            }
        }
    }
}

fn mask_prefix(data: &[u8], prefixlen: u32) -> Vec<u8> {
    data.iter()
        .enumerate()
        .map(|(i, &b)| {
            let bits = (prefixlen as i64 - i as i64 * 8).clamp(0, 8) as u32;
            if bits == 0 {
                0
            } else {
                b & (0xffu16 << (8 - bits)) as u8
            }
        })
        .collect()
}

/// Longest matching prefix for an LPM key (`prefixlen` then data).
fn lpm_match<'e>(entries: &'e [LpmEntry], key: &[u8]) -> Option<&'e LpmEntry> {
    let plen = u32::from_le_bytes(key.get(..4)?.try_into().ok()?);
    let data = &key[4..];
    entries
        .iter()
        .filter(|e| e.prefixlen <= plen && mask_prefix(data, e.prefixlen) == e.data)
        .max_by_key(|e| e.prefixlen)
}

/// FNV-1a with a per-function seed.
fn bloom_hash(data: &[u8], i: u32) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325 ^ (i as u64).wrapping_mul(0x9e3779b97f4a7c15);
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h ^ (h >> 29)
}

/// A map viewed with Rust types for keys and values, for host code:
/// `TypedMap::<u32, u64>::new(&map)?.get(&7)`. Sizes are checked against
/// the map's definition when the view is made.
pub struct TypedMap<'m, K, V> {
    map: &'m Map,
    _types: std::marker::PhantomData<(K, V)>,
}

impl<'m, K: bytemuck::Pod, V: bytemuck::Pod> TypedMap<'m, K, V> {
    /// Fails with EINVAL when `K`/`V` do not have the map's key/value sizes.
    pub fn new(map: &'m Map) -> R<Self> {
        let per_cpu = if is_percpu(map.spec.map_type) {
            map.ncpus as usize
        } else {
            1
        };
        let value_ok = if per_cpu > 1 {
            std::mem::size_of::<V>() == stride(map.spec.value_size) * per_cpu
        } else {
            std::mem::size_of::<V>() == map.spec.value_size as usize
        };
        if std::mem::size_of::<K>() != map.spec.key_size as usize || !value_ok {
            return err(EINVAL);
        }
        Ok(TypedMap {
            map,
            _types: std::marker::PhantomData,
        })
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let v = self.map.lookup(bytemuck::bytes_of(key)).ok()?;
        bytemuck::try_pod_read_unaligned(&v).ok()
    }

    /// Inserts or replaces (`BPF_ANY`); use [`Map::update`] for other flags.
    pub fn insert(&self, key: &K, value: &V) -> R<()> {
        self.map.update(
            bytemuck::bytes_of(key),
            bytemuck::bytes_of(value),
            BPF_ANY,
            None,
        )
    }

    pub fn remove(&self, key: &K) -> R<()> {
        self.map.delete(bytemuck::bytes_of(key))
    }

    /// All entries, in the map's iteration order.
    pub fn entries(&self) -> Vec<(K, V)> {
        self.map
            .entries()
            .into_iter()
            .filter_map(|(k, v)| {
                Some((
                    bytemuck::try_pod_read_unaligned(&k).ok()?,
                    bytemuck::try_pod_read_unaligned(&v).ok()?,
                ))
            })
            .collect()
    }
}
