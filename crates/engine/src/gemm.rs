//! Matrix products on row-major slices through the `gemm` crate: transposes are
//! strides, the destination is written (or added to) in its own layout.

use std::sync::atomic::{AtomicUsize, Ordering};

use gemm::Parallelism;

static CALLS: AtomicUsize = AtomicUsize::new(0);

/// Calls into the `gemm` crate so far (a product split over threads is one call
/// per block; the crate allocates its packing buffers in each call, so allocation
/// counts are stated per call).
pub fn calls() -> usize {
    CALLS.load(Ordering::Relaxed)
}

/// A row-major matrix view: `rows x cols`, element `(i, j)` at `i * rs + j * cs`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: isize,
    pub cs: isize,
}

impl<'a> View<'a> {
    /// A contiguous row-major `rows x cols` matrix.
    pub(crate) fn new(data: &'a [f32], rows: usize, cols: usize) -> View<'a> {
        debug_assert!(data.len() >= rows * cols);
        View {
            data,
            rows,
            cols,
            rs: cols as isize,
            cs: 1,
        }
    }

    /// The transpose, by strides.
    pub(crate) fn t(self) -> View<'a> {
        View {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

/// `dst (m x n, row-major) = a @ b`, or `dst += a @ b` when `accumulate`.
/// With `threads > 1` a product big enough to pay is split into one block per
/// thread on the engine's team, each block one single-threaded gemm: by columns of `dst`
/// and `b` when `dst` is wider than tall (each thread then packs only its share of
/// `b`, the weights in a dense layer's products), else by rows of `dst` and `a`. No
/// reduction across threads: each element is computed by one thread. What holds:
/// the same `threads` gives the same bits, call after call; another thread count
/// gives each block another shape, which the `gemm` crate packs and tiles (and so
/// sums) in another order, so elements may differ in their last bits.
pub(crate) fn matmul(dst: &mut [f32], a: View, b: View, accumulate: bool, threads: usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions");
    assert!(dst.len() >= m * n, "destination too small");
    let span = |v: &View| (v.rows as isize - 1) * v.rs + (v.cols as isize - 1) * v.cs;
    assert!(
        a.rs >= 0 && a.cs >= 0 && b.rs >= 0 && b.cs >= 0,
        "non-negative strides"
    );
    assert!(
        a.data.len() as isize > span(&a) && b.data.len() as isize > span(&b),
        "view out of bounds"
    );
    let by_columns = n > m;
    let long = if by_columns { n } else { m };
    // Small products (the MLP's head, 82K multiply-adds) stay on one thread: waking
    // a second costs more than it saves; so does a block under 8 rows or columns.
    let parts = if threads > 1 && m * n * k >= MIN_SPLIT {
        threads.min(long / MIN_SPAN).max(1)
    } else {
        1
    };
    let each = long.div_ceil(parts);
    // Blocks of `each`: as many as cover `long` (fewer than `parts` when it does not
    // divide evenly, so no block starts past the end).
    let parts = long.div_ceil(each.max(1)).max(1);
    let out = Out(dst.as_mut_ptr());
    let block = |i: usize| {
        let start = i * each;
        let len = each.min(long - start);
        // SAFETY: the asserts above keep every index the strides reach inside the
        // slices (a block starts inside its operand and keeps its non-negative
        // strides); blocks of `dst` are disjoint rows or columns, so no two threads
        // write one element; `dst` does not alias the inputs (borrowed mutably).
        unsafe {
            if by_columns {
                let b_at = b.data.as_ptr().offset(start as isize * b.cs);
                let d = out.ptr().add(start);
                product(m, len, k, d, n, a, a.data.as_ptr(), b, b_at, accumulate);
            } else {
                let a_at = a.data.as_ptr().offset(start as isize * a.rs);
                let d = out.ptr().add(start * n);
                product(len, n, k, d, n, a, a_at, b, b.data.as_ptr(), accumulate);
            }
        }
    };
    super::team::run(parts, &block);
}

thread_local! {
    static IN_PRODUCT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is inside a `gemm` call now: an allocator can tell the
/// `gemm` crate's allocations (its packing buffers) from everyone else's
/// (`tests/alloc.rs`).
pub fn in_product() -> bool {
    IN_PRODUCT.try_with(|f| f.get()).unwrap_or(false)
}

/// Rows of a product below this many multiply-adds stay on one thread.
const MIN_SPLIT: usize = 1 << 17;
/// The fewest rows or columns a thread takes.
const MIN_SPAN: usize = 8;

/// `dst`'s base pointer, shared by the threads that write its disjoint blocks.
#[derive(Clone, Copy)]
struct Out(*mut f32);
impl Out {
    /// The pointer (a method, so closures capture the whole `Out`).
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: the blocks written through it are disjoint (see `matmul`).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// One single-threaded gemm call: the `m x n` block at `dst` (row stride `dst_rs`)
/// `= a @ b`, or `+=` when `accumulate`; `a_at` and `b_at` are where the blocks of
/// `a` and `b` start, with their views' strides.
///
/// # Safety
/// Every element the strides reach from `a_at`, `b_at` and `dst` must be in bounds,
/// and no other thread may touch the block of `dst`.
#[allow(clippy::too_many_arguments)]
unsafe fn product(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    a: View,
    a_at: *const f32,
    b: View,
    b_at: *const f32,
    accumulate: bool,
) {
    CALLS.fetch_add(1, Ordering::Relaxed);
    IN_PRODUCT.with(|f| f.set(true));
    // SAFETY: as the caller promises.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            a_at,
            a.cs,
            a.rs,
            b_at,
            b.cs,
            b.rs,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
    IN_PRODUCT.with(|f| f.set(false));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_with_transposes_and_accumulation() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2x3
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0]; // 3x2
        let mut d = [0.0; 4];
        matmul(&mut d, View::new(&a, 2, 3), View::new(&b, 3, 2), false, 1);
        assert_eq!(d, [4.0, 5.0, 10.0, 11.0]);
        // a^T (3x2) @ a-as-2x3 = 3x3
        let mut e = [0.0; 9];
        matmul(
            &mut e,
            View::new(&a, 2, 3).t(),
            View::new(&a, 2, 3),
            false,
            1,
        );
        assert_eq!(e, [17.0, 22.0, 27.0, 22.0, 29.0, 36.0, 27.0, 36.0, 45.0]);
        matmul(&mut d, View::new(&a, 2, 3), View::new(&b, 3, 2), true, 1);
        assert_eq!(d, [8.0, 10.0, 20.0, 22.0]);
    }

    /// Split over many threads, every shape gives the one-thread product: blocks
    /// by rows and by columns, sizes that do not divide evenly (89 and 97 over 11
    /// and 12 threads once made the last block start past the end).
    #[test]
    fn split_products_repeat_bit_for_bit_and_agree_to_rounding_across_threads() {
        // Real floats (small integers would make every partial sum exact and hide
        // the summation order): the head's weight gradient at 608 rows, x^T @ g.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let (m, k, n) = (128, 608, 10);
        let mut s = 12345u64;
        let mut real = |len: usize| -> Vec<f32> {
            (0..len)
                .map(|_| {
                    s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
                })
                .collect()
        };
        let (a, b) = (real(k * m), real(k * n));
        let run = |threads: usize| {
            let mut out = vec![0f32; m * n];
            pool.install(|| {
                matmul(
                    &mut out,
                    View::new(&a, k, m).t(),
                    View::new(&b, k, n),
                    false,
                    threads,
                )
            });
            out
        };
        let one = run(1);
        for threads in [1, 2, 3] {
            assert_eq!(run(threads), run(threads), "{threads} threads, twice");
            for (x, y) in run(threads).iter().zip(&one) {
                assert!(
                    (x - y).abs() <= 1e-5 * y.abs().max(1.0),
                    "{threads}: {x} vs {y}"
                );
            }
        }
    }

    #[test]
    fn split_products_cover_every_element_once() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        for (m, k, n) in [
            (64, 784, 97),
            (64, 600, 89),
            (97, 300, 64),
            (89, 700, 16),
            (9, 2000, 130),
        ] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 11) as f32 - 5.0).collect();
            let mut want = vec![0f32; m * n];
            matmul(
                &mut want,
                View::new(&a, m, k),
                View::new(&b, k, n),
                false,
                1,
            );
            for threads in [2, 3, 11, 12, 16, 64] {
                // One element past the product: it must stay untouched.
                let mut got = vec![7f32; m * n + 1];
                pool.install(|| {
                    matmul(
                        &mut got,
                        View::new(&a, m, k),
                        View::new(&b, k, n),
                        false,
                        threads,
                    )
                });
                assert_eq!(&got[..m * n], &want[..], "{m}x{k}x{n} at {threads} threads");
                assert_eq!(
                    got[m * n],
                    7.0,
                    "{m}x{k}x{n} at {threads} threads wrote past the end"
                );
                // Transposed operands split alike.
                let mut t = vec![0f32; m * n];
                let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
                matmul(
                    &mut t,
                    View::new(&a, m, k),
                    View::new(&bt, n, k).t(),
                    false,
                    threads,
                );
                assert_eq!(t, want, "{m}x{k}x{n} b transposed at {threads} threads");
            }
        }
    }
}
