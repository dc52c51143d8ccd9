//! Reports: what one run or a sweep produced, and the writers that put it on a page
//! (JSON for machines, CSV for pandas, Markdown for people, SVG plots).

mod run;

pub use run::{CostSummary, EpochRecord, RunConfig, RunReport};
