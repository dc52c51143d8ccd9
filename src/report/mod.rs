//! Reports: what one run or a sweep produced, and the writers that put it on a page
//! (JSON for machines, CSV for pandas, Markdown for people, SVG plots).

mod io;
mod layers;
pub mod nonfinite;
mod pareto;
pub(crate) mod plot;
mod run;
mod verdict;
mod write;

pub use io::{check_output, write_atomically, write_output, ReportError};
pub(crate) use io::{create_dir, has_marker, replace_own_file, MARKER as MARKER_LINE};
pub use pareto::pareto_front;
pub use run::{
    ChainMoments, CostSummary, EpochRecord, LayerCost, RangeRecord, RunConfig, RunReport,
    SATURATION_WARNING,
};
pub use verdict::{
    at_chance, error_metric, primary_metric, Verdict, CHANCE_MARGIN, PRIMARY_METRICS,
};
pub(crate) use write::{cell, human, to_json_pretty, write_svg};
pub use write::{run_dir, slug, write_run, REPORTS_ROOT, RUN_JSON, RUN_MD, RUN_PLOTS};
