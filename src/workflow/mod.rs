//! The LR workflow of the founding notes: `rudder sweep` (a trial per LR multiplier),
//! `rudder lr-find` (the range test), `rudder rescale` (a reference setup carried to
//! another batch size). `rudder report` is in `report`.

pub mod commands;
pub mod lr_find;
pub mod rescale;
pub mod sweep;
