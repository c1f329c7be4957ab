//! rudder's run folder: what a run leaves behind and reads back. The JSONL logs
//! (`metrics.jsonl`, `events.jsonl`, `steps.jsonl`) written line by line, the
//! folder's lock, the control channel (`control.jsonl`), `config.json` written atomically, checkpoints written aside and
//! renamed with checksums checked on every read, the HTML reports, and TensorBoard
//! event files.

pub mod checkpoint;
pub mod control;
pub mod fault;
pub mod files;
pub mod lock;
pub mod log;
pub mod report;
pub mod sink;
pub mod tensorboard;
