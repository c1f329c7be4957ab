//! Batches drawn from a resident split: a seeded shuffle per epoch and a cursor, so the
//! batch size may change between any two batches. Each batch gathers only its own rows.

use candle_core::Tensor;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::Split;

/// Walks one epoch's permutation of a split.
#[derive(Debug, Clone)]
pub struct Batcher {
    rng: ChaCha8Rng,
    order: Vec<u32>,
    cursor: usize,
    /// Epochs shuffled so far: with the seed, the whole state of the data order.
    shuffles: u64,
}

impl Batcher {
    /// A batcher over `len` examples whose shuffles follow `seed`.
    pub fn new(len: usize, seed: u64) -> Batcher {
        Batcher {
            rng: ChaCha8Rng::seed_from_u64(seed),
            order: (0..len as u32).collect(),
            cursor: len,
            shuffles: 0,
        }
    }

    /// Shuffles for a new epoch and rewinds.
    pub fn start_epoch(&mut self) {
        self.order.shuffle(&mut self.rng);
        self.cursor = 0;
        self.shuffles += 1;
    }

    /// (epochs shuffled, position in the current one): with the seed, enough to
    /// rebuild this batcher.
    pub fn position(&self) -> (u64, usize) {
        (self.shuffles, self.cursor)
    }

    /// Replays `shuffles` epochs' shuffles and moves to `cursor`, as a resume does;
    /// false if the position cannot be in a batcher of this length.
    pub fn restore(&mut self, shuffles: u64, cursor: usize) -> bool {
        if cursor > self.order.len() || (shuffles == 0 && cursor != self.order.len()) {
            return false;
        }
        while self.shuffles < shuffles {
            self.start_epoch();
        }
        self.cursor = cursor;
        self.shuffles == shuffles
    }

    /// Examples not yet drawn in this epoch.
    pub fn remaining(&self) -> usize {
        self.order.len() - self.cursor
    }

    /// The rows of the next batch of at most `size` examples, `None` once the epoch is
    /// drawn.
    pub fn next_rows(&mut self, size: usize) -> Option<&[u32]> {
        let take = size.min(self.remaining());
        if take == 0 {
            return None;
        }
        self.cursor += take;
        Some(&self.order[self.cursor - take..self.cursor])
    }

    /// The next batch of at most `size` examples, `None` once the epoch is drawn.
    pub fn next_batch(
        &mut self,
        split: &Split,
        size: usize,
    ) -> candle_core::Result<Option<(Tensor, Tensor)>> {
        let Some(rows) = self.next_rows(size) else {
            return Ok(None);
        };
        let idx = Tensor::from_slice(rows, rows.len(), split.x.device())?;
        Ok(Some((
            split.x.index_select(&idx, 0)?,
            split.y.index_select(&idx, 0)?,
        )))
    }
}

/// Batches of a split in order, for evaluation.
pub fn in_order(
    split: &Split,
    size: usize,
) -> impl Iterator<Item = candle_core::Result<(Tensor, Tensor)>> + '_ {
    let n = split.len();
    (0..n).step_by(size.max(1)).map(move |start| {
        let len = size.min(n - start);
        Ok((
            split.x.narrow(0, start, len)?,
            split.y.narrow(0, start, len)?,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn every_example_once_per_epoch_whatever_the_batch_sizes() {
        let split = Split {
            x: Tensor::arange(0f32, 10.0, &Device::Cpu)
                .unwrap()
                .reshape((10, 1))
                .unwrap(),
            y: Tensor::arange(0u32, 10, &Device::Cpu).unwrap(),
        };
        let mut b = Batcher::new(10, 3);
        b.start_epoch();
        let mut seen = Vec::new();
        for size in [3, 1, 4, 5] {
            if let Some((x, y)) = b.next_batch(&split, size).unwrap() {
                let ys = y.to_vec1::<u32>().unwrap();
                let xs: Vec<u32> = x
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .map(|&v| v as u32)
                    .collect();
                assert_eq!(xs, ys);
                seen.extend(ys);
            }
        }
        assert_eq!(seen.len(), 10);
        assert_ne!(seen, (0..10).collect::<Vec<_>>(), "shuffled");
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert!(b.next_batch(&split, 4).unwrap().is_none());
        // Same seed, same order.
        let mut again = Batcher::new(10, 3);
        again.start_epoch();
        assert_eq!(again.order, b.order);
    }
}
