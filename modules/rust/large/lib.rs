//! large: a handler whose code section is over 2 MB, for cold-start (compile) benchmarks.
//!
//! `mix::<T>` is instantiated for 2^LEVELS distinct type-level numbers `T` (built from
//! `Bit<Bit<...Zero, 0|1>...>`), each with different constants, so no two copies are
//! identical and none can be merged; `g12::<Zero>` calls every one of them in a chain.
//! Answers `large ok\n` with the chain's result in `x-large-checksum`.
use wasmhost::{Request, Response};

pub trait Num {
    const V: u64;
}
pub struct Zero;
impl Num for Zero {
    const V: u64 = 0;
}
pub struct Bit<T, const B: u64>(T);
impl<T: Num, const B: u64> Num for Bit<T, B> {
    const V: u64 = T::V * 2 + B;
}

#[inline(never)]
fn mix<T: Num>(mut x: u64) -> u64 {
    let n = T::V.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD6E8_FEB8_6659_FD93;
    macro_rules! round {
        ($($k:literal)*) => {$(
            x ^= n.rotate_left($k * 7 % 64).wrapping_add($k * 0x0123_4567_89AB_CDEF);
            x = x.rotate_left(((T::V + $k) % 61 + 1) as u32).wrapping_mul(n | ($k << 1) | 1);
        )*};
    }
    round!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20);
    x
}

macro_rules! levels {
    ($first:ident; $($prev:ident => $next:ident),*) => {
        #[inline(always)]
        fn $first<T: Num>(x: u64) -> u64 {
            mix::<Bit<T, 1>>(mix::<Bit<T, 0>>(x))
        }
        $(
            #[inline(always)]
            fn $next<T: Num>(x: u64) -> u64 {
                $prev::<Bit<T, 1>>($prev::<Bit<T, 0>>(x))
            }
        )*
    };
}
// 2^12 = 4096 instantiations of `mix`.
levels!(g1; g1 => g2, g2 => g3, g3 => g4, g4 => g5, g5 => g6, g6 => g7, g7 => g8, g8 => g9,
        g9 => g10, g10 => g11, g11 => g12);

fn handle(req: Request) -> Response {
    let seed = req.body.len() as u64 ^ req.path.len() as u64;
    let sum = g12::<Zero>(seed);
    Response::text(200, "large ok\n").with_header("x-large-checksum", &format!("{:016x}", sum))
}

wasmhost::handler!(handle);
