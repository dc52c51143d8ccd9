//! The CSV reader, through the workload that names the file: any bytes (plain or gzip) load as
//! a table or give a typed error with the file and line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lpsim::workload::Workload;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the spec's options; the rest is the file.
    let Some((&opts, body)) = data.split_first() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("lpsim-fuzz-csv-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let csv = dir.join("data.csv");
    if std::fs::write(&csv, body).is_err() {
        return;
    }
    let header = ["auto", "present", "absent"][usize::from(opts % 3)];
    let task = ["classification", "regression"][usize::from((opts >> 2) & 1)];
    let label = i64::from((opts >> 3) & 3) - 1;
    let standardize = (opts >> 5) & 1 == 1;
    let text = format!(
        r#"{{"name": "fuzz", "data": {{"kind": "csv", "path": "data.csv", "header": "{header}",
        "task": "{task}", "label_column": {label}, "standardize": {standardize}}},
        "model": {{"kind": "{model}"}}, "train": {{"epochs": 1, "batch_size": 4}}}}"#,
        model = if task == "regression" { "linear" } else { "logistic" },
    );
    if let Ok(w) = Workload::from_json_str(&text, &dir.join("w.json")) {
        if let Ok(problem) = w.load_data() {
            let _ = problem;
        }
    }
});
