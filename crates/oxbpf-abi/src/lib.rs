//! # oxbpf-abi: the kernel's BPF vocabulary, as data
//!
//! Everything else in oxbpf speaks the kernel's language — map, program,
//! attach and link types, `bpf(2)` commands, helper ids and prototypes,
//! context layouts, errno values — and this crate is the one place that
//! spells it out. It has no dependencies and no logic beyond lookups, so
//! the verifier, the interpreter, the JIT, the loader and the kernel
//! backend all read the same table.
//!
//! The enums come from the running kernel's own BTF
//! (`scripts/gen-abi-enums.py` writes `enums.rs`); each variant carries its
//! kernel name as a doc alias, so searching the docs for
//! `BPF_MAP_TYPE_HASH` finds [`MapType::Hash`]. Values read from files or
//! the kernel stay `u32`s where they may be unknown; the `map_type`,
//! `prog_type`, ... modules name each value as a constant for matching.
#![forbid(unsafe_code)]

/// Context layouts: every field's offset and size, by struct, from the
/// kernel's BTF (`scripts/gen-abi-ctx.py`).
pub mod ctx;
mod enums;
mod helper_table;
pub mod helpers;
mod progtype;
pub mod syscalls;

pub use enums::*;

/// Defines a `#[repr(u32)]` enum of kernel values with its kernel and
/// short names, `TryFrom<u32>`, and a module of `u32` constants.
#[macro_export]
#[doc(hidden)]
macro_rules! abi_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $consts:ident {
            $( $variant:ident = $value:literal, $konst:ident, $kname:literal, $short:literal; )*
        }
    ) => {
        $(#[$meta])*
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $(
                #[doc = $kname]
                #[doc(alias = $kname)]
                $variant = $value,
            )*
        }

        impl $name {
            /// Every value, in numeric order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The kernel's name (`BPF_MAP_TYPE_HASH`).
            pub const fn kernel_name(self) -> &'static str {
                match self { $($name::$variant => $kname),* }
            }

            /// The short name bpftool prints (`hash`).
            pub const fn name(self) -> &'static str {
                match self { $($name::$variant => $short),* }
            }

            /// The value by its short or kernel name.
            pub fn from_name(name: &str) -> Option<$name> {
                match name {
                    $($short | $kname => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// The value for a number, if the kernel defines it.
            pub const fn from_u32(v: u32) -> Option<$name> {
                match v {
                    $($value => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// The number.
            pub const fn id(self) -> u32 {
                self as u32
            }
        }

        impl TryFrom<u32> for $name {
            type Error = u32;
            fn try_from(v: u32) -> Result<$name, u32> {
                $name::from_u32(v).ok_or(v)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        #[doc = concat!("The values of [`", stringify!($name), "`] as `u32` constants, for matching raw numbers.")]
        pub mod $consts {
            $(
                #[doc = $kname]
                pub const $konst: u32 = $value;
            )*
        }
    };
}

/// One field of a context struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtxField {
    pub name: &'static str,
    pub offset: u32,
    pub size: u32,
}

/// A context struct's layout (x86-64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtxLayout {
    pub name: &'static str,
    pub size: u32,
    pub fields: &'static [CtxField],
}

impl CtxLayout {
    /// The field that holds byte `off`, if any.
    pub fn field_at(&self, off: u32) -> Option<&'static CtxField> {
        self.fields
            .iter()
            .find(|f| off >= f.offset && off < f.offset + f.size)
    }
}

/// The errno name for a (positive) error number: `EINVAL` for 22.
pub fn errno_name(errno: i32) -> Option<&'static str> {
    ERRNO_NAMES
        .binary_search_by_key(&errno, |(n, _)| *n)
        .ok()
        .map(|i| ERRNO_NAMES[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_agree() {
        assert_eq!(MapType::Hash.id(), map_type::HASH);
        assert_eq!(
            MapType::from_name("BPF_MAP_TYPE_RINGBUF"),
            Some(MapType::Ringbuf)
        );
        assert_eq!(MapType::from_name("ringbuf"), Some(MapType::Ringbuf));
        assert_eq!(MapType::Ringbuf.id(), 27);
        assert_eq!(ProgType::Xdp.kernel_name(), "BPF_PROG_TYPE_XDP");
        assert_eq!(HelperId::RingbufReserve.id(), helper::RINGBUF_RESERVE);
        assert_eq!(HelperId::from_u32(211), Some(HelperId::CgrpStorageDelete));
        assert_eq!(
            HelperId::ALL.len(),
            212,
            "unspec and the 211 helpers of Linux 6.18"
        );
        assert_eq!(Cmd::from_u32(5), Some(Cmd::ProgLoad));
        assert_eq!(errno_name(22), Some("EINVAL"));
        assert_eq!(errno_name(524), Some("ENOTSUPP"));
        for w in ERRNO_NAMES.windows(2) {
            assert!(w[0].0 < w[1].0, "sorted for binary search");
        }
    }
}
