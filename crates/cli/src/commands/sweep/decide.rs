//! The scheduler's decisions carried out on the population: stops and pauses told to
//! running trials (or done at once to waiting ones), resumes and new trials queued,
//! exploits' checkpoints copied and their settings told.

use serde_json::{Map, Value, json};

use rudder_policy::sweep::{Status, SweepDecision};

use super::coord::{Coordinator, Instruction, LIVE_KEYS, Slot, State, say};

impl Coordinator {
    /// The scheduler's decision `d` at trial `at`'s report, carried out.
    pub(super) fn carry_out(&self, st: &mut State, at: usize, d: SweepDecision) {
        let index = |st: &State, id: &str| st.slots.iter().position(|s| s.view.id == id);
        for id in &d.stop {
            if let Some(j) = index(st, id) {
                self.end(st, j, Status::Stopped);
            }
        }
        for id in &d.pause {
            if let Some(j) = index(st, id) {
                self.end(st, j, Status::Paused);
            }
        }
        for id in &d.resume {
            if let Some(j) = index(st, id)
                && st.slots[j].view.status == Status::Paused
            {
                // Ahead of the trials not yet started: it has its epochs behind it.
                st.slots[j].view.status = Status::Pending;
                st.queue.push_front(j);
            }
        }
        for e in &d.exploit {
            if let (Some(j), Some(f)) = (index(st, &e.trial), index(st, &e.from)) {
                self.exploit(st, j, f, e);
            }
        }
        for settings in &d.start {
            self.start(st, settings);
        }
        // `metrics` are in the decision's event.
        if let Some(m) = &d.log {
            say(&format!("{}: {m}", st.slots[at].view.id));
        }
    }

    /// Trial `j` told to end as `status` (stopped or paused): at its next hook if it
    /// runs; at once if it waits.
    fn end(&self, st: &mut State, j: usize, status: Status) {
        let s = &mut st.slots[j];
        match s.view.status {
            // At its last epoch a pause has nothing to keep for later.
            Status::Running
                if status == Status::Paused && s.view.history.len() >= s.plan.cfg.epochs => {}
            Status::Running => s.pending.push(Instruction::End(status)),
            Status::Pending => {
                st.queue.retain(|&q| q != j);
                let s = &mut st.slots[j];
                if !s.started && status == Status::Stopped {
                    s.result = Some(Ok(super::record::not_run(&s.plan)));
                    s.view.status = status;
                } else if s.started {
                    s.view.status = status;
                } else {
                    // Paused before it ever ran: it waits its turn again.
                    st.queue.push_back(j);
                }
            }
            Status::Paused if status == Status::Stopped => s.view.status = status,
            _ => {}
        }
    }

    /// Trial `j` takes trial `f`'s newest checkpoint and settings, then `e`'s.
    fn exploit(&self, st: &mut State, j: usize, f: usize, e: &rudder_policy::sweep::Exploit) {
        st.exploits += 1;
        let tag = format!("exploit-{}", st.exploits);
        let from_dir = self.cfg.out.join(&st.slots[f].plan.name);
        let to_dir = self.cfg.out.join(&st.slots[j].plan.name);
        let copied = super::copy::copy_newest(&from_dir, &to_dir, &tag);
        let (from_epoch, digest) = match copied {
            Ok(c) => c,
            Err(why) => {
                say(&format!(
                    "exploit of {} into {} failed: {why}",
                    e.from, e.trial
                ));
                self.event(json!({"kind": "exploit_failed", "trial": e.trial, "from": e.from, "message": why}));
                return;
            }
        };
        let mut settings = st.slots[f].view.settings.clone();
        for (k, factor) in &e.perturb {
            if let Some(v) = settings.get(k).and_then(Value::as_f64) {
                settings.insert(k.clone(), json!(v * factor));
            }
        }
        settings.extend(e.settings.clone());
        let live: Map<String, Value> = settings
            .iter()
            .filter(|(k, _)| LIVE_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let s = &mut st.slots[j];
        let epoch = s.view.history.len();
        s.view.settings.extend(live.clone());
        let entry = json!({"epoch": epoch, "from": e.from, "from_epoch": from_epoch, "settings": live, "checkpoint": tag, "digest": digest});
        s.lineage.push(entry.clone());
        s.pending.push(Instruction::Exploit {
            tag,
            decision: Value::Object(live),
        });
        let mut ev = entry;
        ev["kind"] = json!("exploit");
        ev["trial"] = json!(e.trial);
        self.event(ev);
    }

    /// A trial the scheduler starts, queued.
    fn start(&self, st: &mut State, settings: &Map<String, Value>) {
        let k = st.slots.iter().filter(|s| s.start.is_some()).count();
        match super::plan::started(&self.base, &self.cfg, settings, k) {
            Ok(p) => {
                let i = st.slots.len();
                self.event(json!({"kind": "start", "trial": p.name, "settings": settings}));
                st.slots.push(Slot::new(p, i, Some(settings.clone())));
                st.queue.push_back(i);
            }
            Err(why) => {
                say(&format!(
                    "the scheduler's new trial {} was refused: {why}",
                    Value::Object(settings.clone())
                ));
                self.event(json!({"kind": "invalid_decision", "key": "start", "message": why}));
            }
        }
    }
}
