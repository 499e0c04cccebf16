//! The run report: what every scenario and step of a run did, and the page
//! that shows it (`artifacts/<run>/index.html`).
//!
//! - [`records`]: a cucumber writer that records scenarios and steps as
//!   they run (timing, errors, retries, the screen after each step) and
//!   prints the end-of-run summary.
//! - [`evidence`]: what steps saw, filed while they run and attached to
//!   the step by the recorder.
//! - [`html`]: the page, rendered from the records.
//!
//! Steps and the World use only the small interface re-exported here:
//! [`screen_wait`] and [`verdict`] file what a step saw; the World tells
//! the report which VM runs ([`vm_started`], `vm_leaving`). The runner
//! wires the recorder into cucumber and writes the page at the end.

pub mod evidence;
pub mod html;
pub mod records;

pub(crate) use evidence::vm_leaving;
pub use evidence::{screen_wait, verdict, vm_started};
pub use records::{
    save_shot, Recorder, Records, RecordsHandle, RerunCommand, ScenarioRecord, Shot, Status,
    StepRecord, StepScreen,
};
