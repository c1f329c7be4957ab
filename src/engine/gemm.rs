//! Matrix products on row-major slices through the `gemm` crate: transposes are
//! strides, the destination is written (or added to) in its own layout.

use std::sync::atomic::{AtomicUsize, Ordering};

use gemm::Parallelism;

static CALLS: AtomicUsize = AtomicUsize::new(0);

/// Matrix products run so far (the `gemm` crate allocates its packing buffers in
/// each call, so allocation counts are stated per product).
pub fn calls() -> usize {
    CALLS.load(Ordering::Relaxed)
}

/// A row-major matrix view: `rows x cols`, element `(i, j)` at `i * rs + j * cs`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: isize,
    pub cs: isize,
}

impl<'a> View<'a> {
    /// A contiguous row-major `rows x cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> View<'a> {
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
    pub fn t(self) -> View<'a> {
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
/// `threads > 1` lets gemm split large products over rayon's pool.
pub fn matmul(dst: &mut [f32], a: View, b: View, accumulate: bool, threads: usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions");
    assert!(dst.len() >= m * n, "destination too small");
    let span = |v: &View| (v.rows as isize - 1) * v.rs + (v.cols as isize - 1) * v.cs;
    assert!(
        a.data.len() as isize > span(&a) && b.data.len() as isize > span(&b),
        "view out of bounds"
    );
    CALLS.fetch_add(1, Ordering::Relaxed);
    // Measured here: splitting products under ~32M multiply-adds (all of the MLP's, the
    // CNN's first convolution) over two threads costs more than it saves.
    let par = if threads > 1 && m * n * k >= 1 << 25 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: the asserts above keep every index the strides reach inside the slices,
    // and `dst` does not alias the inputs (it is borrowed mutably).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs,
            a.rs,
            b.data.as_ptr(),
            b.cs,
            b.rs,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
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
}
