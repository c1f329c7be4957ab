//! One epoch: its optimizer steps (each after `on_step`, its micro-batches sharded
//! across ranks and their gradients summed), validation reduced across ranks,
//! `on_epoch_end`, and the metrics line to every sink.

use std::time::Instant;

use rudder_nn::data::Split;
use rudder_policy::{Controller, Decision, EpochMetrics, Hook};
use rudder_run::checkpoint::Partial;
use rudder_run::log::{EpochRecord, StepLine};
use serde_json::json;

use super::{DIVERGENCE_FACTOR, Sums, TrainError, Trainer};

impl Trainer<'_> {
    /// One epoch: training steps, validation, `on_epoch_end`, the metrics line and
    /// the report. `None` when a signal stopped it between two steps (the epoch stays
    /// in progress, for a checkpoint).
    pub(super) fn epoch_pass(
        &mut self,
        controller: &mut dyn Controller,
    ) -> Result<Option<EpochRecord>, TrainError> {
        let t0 = Instant::now();
        let before = self.partial.unwrap_or_default();
        self.sinks.progress.start_epoch(
            self.state.epoch,
            self.state.settings.epochs,
            self.data.train.len(),
        );
        if !self.train_steps(controller, t0, before)? {
            return Ok(None);
        }
        self.end_epoch(controller, t0, before).map(Some)
    }

    /// The epoch's optimizer steps, each after `on_step` (and a reload, if one is
    /// due): its sums kept in `partial`, a `save` written between two steps. `false`
    /// when a signal stopped it between two steps.
    fn train_steps(
        &mut self,
        controller: &mut dyn Controller,
        t0: Instant,
        before: Partial,
    ) -> Result<bool, TrainError> {
        let train = self.data.train.clone();
        while self.batcher.remaining() > 0 {
            self.boundary(controller, false)?;
            self.hook(Hook::Step, controller)?;
            if self.stop.is_some() {
                break;
            }
            let (loss, ok, count) = self.optimizer_step(&train)?;
            let elapsed = t0.elapsed().as_secs_f64();
            let p = self.partial.get_or_insert_default();
            p.loss_sum += loss;
            p.correct += ok;
            p.seen += count;
            p.train_time_s = before.train_time_s + elapsed;
            self.sinks.progress.advance(
                count,
                self.state.step,
                loss / count as f64,
                self.state.settings.lr,
                elapsed,
            );
            self.sinks.log.step(&StepLine {
                step: self.state.step,
                epoch: self.state.epoch,
                lr: self.state.settings.lr,
                momentum: self.state.settings.momentum,
                batch_size: self.state.settings.batch_size,
                loss: loss / count as f64,
            })?;
            if crate::dist::ranklog::on() {
                crate::dist::ranklog::write(&json!({
                    "step": self.state.step,
                    "lr": self.state.settings.lr,
                    "batch_size": self.state.settings.batch_size,
                    "loss": loss / count as f64,
                }));
            }
            rudder_run::fault::step(self.state.step);
            if self.interrupt_agreed() {
                self.sinks.progress.clear();
                return Ok(false);
            }
            if self.cfg.stop_on_divergence && self.check_divergence(loss / count as f64)? {
                break;
            }
            if self.batcher.remaining() > 0
                && let Some(name) = self.take_save()
            {
                self.write_checkpoints(&[name], controller)?;
            }
        }
        Ok(true)
    }

    /// Validation, `on_epoch_end`, the metrics line to every sink.
    fn end_epoch(
        &mut self,
        controller: &mut dyn Controller,
        t0: Instant,
        before: Partial,
    ) -> Result<EpochRecord, TrainError> {
        let p = self.partial.take().unwrap_or(before);
        let mut m = self.validate()?;
        let seen = p.seen.max(1) as f64;
        m.train_loss = Some(p.loss_sum / seen);
        m.train_acc = self.data.targets.is_none().then_some(p.correct / seen);
        self.state.end_epoch(m);
        // The values the epoch trained with; `epochs` as the hook leaves it.
        let used = self.state.settings;
        self.sinks.progress.hold();
        self.hook(Hook::EpochEnd, controller)?;
        // The control channel once more before the epoch is recorded and
        // checkpointed: a line written while it validated (a sweep's coordinator
        // answering the epoch's report) counts at this epoch's end, in its
        // checkpoint.
        self.boundary(controller, true)?;
        let record = EpochRecord {
            epoch: self.state.epoch,
            step: self.state.step,
            epochs: self.state.settings.epochs,
            lr: used.lr,
            batch_size: used.batch_size,
            accumulation: used.accumulation,
            train_loss: p.loss_sum / seen,
            train_acc: m.train_acc,
            val_loss: m.val_loss.unwrap_or(f64::NAN),
            val_acc: m.val_acc,
            val_rmse: m.val_rmse,
            val_mae: m.val_mae,
            val_r2: m.val_r2,
            epoch_time_s: before.train_time_s + t0.elapsed().as_secs_f64(),
            samples_per_s: p.seen as f64 / p.train_time_s.max(1e-9),
            policy: std::mem::take(&mut self.policy_metrics),
        };
        // The monitored best moves only with `best` itself, at the epoch-end
        // checkpoints (`epoch_end_checkpoints`): the two cannot part.
        let mon = &self.ckpt.monitored;
        let value = record.metric(mon.metric);
        self.ckpt.improved = mon
            .metric
            .improves(value, mon.value)
            .then_some((value, self.state.epoch));
        self.state.history.push(record.to_value());
        self.sinks.epoch(&record, &self.state.history)?;
        if crate::dist::ranklog::on() {
            self.learner.sync_model()?;
            let mut values = Vec::new();
            for (_, v) in self.learner.model().params() {
                values.extend(v.flatten_all()?.to_vec1::<f32>()?);
            }
            crate::dist::ranklog::write(&json!({
                "epoch": self.state.epoch,
                "weights": crate::dist::ranklog::digest(values),
            }));
        }
        Ok(record)
    }

    /// The validation metrics: each rank evaluates its shard, and the sums are
    /// reduced. Classification has the accuracy; regression RMSE and MAE over all
    /// targets and R^2 averaged over the targets, in the targets' units.
    fn validate(&mut self) -> Result<EpochMetrics, TrainError> {
        let n = self.data.val.len();
        let (lo, hi) = crate::dist::shard(n, self.world.rank(), self.world.size());
        let mut sums = self.learner.evaluate(&self.data.val, lo..hi)?;
        let k = self.data.targets.as_ref().map_or(0, |t| t.val_sst.len());
        sums.sq_err.resize(k, 0.0);
        let mut flat = sums.to_vec();
        self.world.allreduce_f64(&mut flat);
        let s = Sums::from_slice(&flat);
        let nf = n.max(1) as f64;
        let mut m = EpochMetrics::default();
        m.val_loss = Some(s.loss / nf);
        match &self.data.targets {
            None => m.val_acc = Some(s.correct / nf),
            Some(t) => {
                let cells = nf * k.max(1) as f64;
                m.val_rmse = Some((s.sq_err.iter().sum::<f64>() / cells).sqrt());
                m.val_mae = Some(s.abs_err / cells);
                let r2: f64 = s
                    .sq_err
                    .iter()
                    .zip(&t.val_sst)
                    // scikit-learn's r2_score(force_finite=True): a constant target
                    // scores 1 when predicted exactly, else 0.
                    .map(|(se, sst)| match (*sst > 0.0, *se > 0.0) {
                        (true, _) => 1.0 - se / sst,
                        (false, true) => 0.0,
                        (false, false) => 1.0,
                    })
                    .sum();
                m.val_r2 = Some(r2 / k.max(1) as f64);
            }
        }
        Ok(m)
    }

    /// The sweep's guard: a step loss that is not finite or above
    /// `DIVERGENCE_FACTOR` x the first step's stops the run as diverged.
    fn check_divergence(&mut self, loss: f64) -> Result<bool, TrainError> {
        let first = *self.first_loss.get_or_insert(loss);
        if loss.is_finite() && loss <= DIVERGENCE_FACTOR * first {
            return Ok(false);
        }
        self.diverged = true;
        let stop = Decision {
            stop: true,
            reason: Some(format!(
                "diverged: step {} loss {} (first step {})",
                self.state.step,
                rudder_core::text::fmt_metric(loss),
                rudder_core::text::fmt_metric(first)
            )),
            ..Decision::default()
        };
        self.apply(Hook::Step.function(), stop)?;
        Ok(true)
    }

    /// One optimizer step over `accumulation` micro-batches. Returns the summed loss
    /// over examples, the number classified right, and the examples used.
    ///
    /// With many ranks each takes its slice of every (global) micro-batch; its
    /// gradient is weighted by its share of the rows, so the sum across ranks is the
    /// gradient of the global batch's mean loss, and every rank takes the same update.
    fn optimizer_step(&mut self, train: &Split) -> Result<(f64, f64, usize), TrainError> {
        let (bs, acc) = (
            self.state.settings.batch_size,
            self.state.settings.accumulation,
        );
        let (rank, size) = (self.world.rank(), self.world.size());
        let (mut loss_sum, mut correct, mut count) = (0f64, 0f64, 0usize);
        for k in 0..acc {
            let Some(rows) = self.batcher.next_rows(bs) else {
                break;
            };
            let (lo, hi) = crate::dist::shard(rows.len(), rank, size);
            let mine = &rows[lo..hi];
            count += rows.len();
            if mine.is_empty() {
                if k == 0 {
                    self.learner.zero_grad()?;
                }
                continue;
            }
            let share = mine.len() as f64 / rows.len() as f64;
            let (loss, ok) = self
                .learner
                .accumulate(train, mine, k == 0, share / acc as f64)?;
            loss_sum += loss * mine.len() as f64;
            correct += ok;
        }
        if size > 1 {
            let t = Instant::now();
            self.learner.reduce_grads(self.world)?;
            let mut sums = [loss_sum, correct];
            self.world.allreduce_f64(&mut sums);
            [loss_sum, correct] = sums;
            self.comm_s += t.elapsed().as_secs_f64();
        }
        self.learner.step()?;
        self.state.step += 1;
        Ok((loss_sum, correct, count))
    }
}
